// Read-only memory map of a whole file. Checkpoints are mapped rather than read so that tensor data
// is paged in on first touch and shared with the page cache; weights then cost no extra host copy.
// The mapping lives as long as the MappedFile (moving it keeps the same addresses), so pointers into
// bytes() stay valid across moves.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>

namespace shardlm {

class MappedFile {
 public:
  // Maps the file read-only and asks the kernel to start reading it ahead. Fails (shardlm::Error,
  // naming the path and the system's reason) if it cannot be opened, is not a regular file, or
  // cannot be mapped. An empty file gives an empty span.
  static MappedFile open(const std::filesystem::path& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile(std::filesystem::path path, const std::byte* data, size_t size);
  void unmap() noexcept;

  std::filesystem::path path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace shardlm
