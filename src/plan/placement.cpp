// Placement names as torch.distributed prints them.
#include "plan/placement.h"

#include <fmt/format.h>

namespace shardlm {

std::string placement_name(const Placement& placement) {
  switch (placement.kind) {
    case Placement::Kind::SHARD: return fmt::format("Shard({})", placement.dim);
    case Placement::Kind::REPLICATE: return "Replicate()";
    case Placement::Kind::PARTIAL: return "Partial(sum)";
  }
  return "?";
}

}  // namespace shardlm
