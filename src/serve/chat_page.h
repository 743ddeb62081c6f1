// The chat page `shardlm serve` answers GET / with: serve/chat_page.html, one self-contained file
// (inline style and script) that chats through /v1/chat/completions. The build compiles the file in
// (src/CMakeLists.txt generates chat_page.cpp from it), so the binary serves it with no data folder
// beside it.
#pragma once

#include <string_view>

namespace shardlm::serve {

std::string_view chat_page_html();

}  // namespace shardlm::serve
