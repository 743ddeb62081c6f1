// Reference ids from @huggingface/tokenizers (tokenizers.js) for the C++ oracle test.
//
// Usage: node oracle_encode.mjs TOKENIZER_JSON STRINGS_JSON
//   STRINGS_JSON holds a JSON list of strings. Prints one JSON object to stdout:
//   {"ids": [[...], ...], "ids_no_special": [[...], ...], "decoded": ["...", ...]}
//   ids:            encode(text).ids                          (add_special_tokens = true)
//   ids_no_special: encode(text, {add_special_tokens: false}).ids
//   decoded:        decode(ids_no_special)                    (no clean-up of spaces)
// Only tokenizer.json is used: the tokenizer_config.json rules are Transformers', which this library
// does not implement, so the C++ side is loaded without a config for this comparison too.
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const [tokenizerPath, stringsPath] = process.argv.slice(2);
if (!tokenizerPath || !stringsPath) {
  console.error("usage: node oracle_encode.mjs TOKENIZER_JSON STRINGS_JSON");
  process.exit(2);
}
const tokenizer = new Tokenizer(JSON.parse(readFileSync(tokenizerPath, "utf8")), { clean_up_tokenization_spaces: false });
const strings = JSON.parse(readFileSync(stringsPath, "utf8"));

const result = { ids: [], ids_no_special: [], decoded: [] };
for (const text of strings) {
  result.ids.push(tokenizer.encode(text).ids);
  const idsNoSpecial = tokenizer.encode(text, { add_special_tokens: false }).ids;
  result.ids_no_special.push(idsNoSpecial);
  // tokenizers.js refuses to decode an empty list; the answer is the empty string.
  result.decoded.push(idsNoSpecial.length === 0 ? "" : tokenizer.decode(idsNoSpecial));
}
process.stdout.write(JSON.stringify(result));
