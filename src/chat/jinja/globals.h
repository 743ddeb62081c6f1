// The functions every template can call: range(), namespace(), dict(), raise_exception() (how
// chat templates refuse a conversation they cannot render) and strftime_now() (Llama's date line).
#pragma once

#include "chat/jinja/value.h"

namespace shardlm::jinja {

const Object& builtin_globals();

}  // namespace shardlm::jinja
