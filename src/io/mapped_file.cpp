// POSIX implementation of MappedFile: open, fstat, mmap, then close the descriptor (the mapping
// keeps the file alive). Read-ahead hints are best effort: a kernel that ignores them only loads
// the weights more slowly, so their failures are not errors.
#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "core/error.h"

namespace shardlm {

namespace {

std::string errno_text(int error_number) { return std::generic_category().message(error_number); }

// Closes the descriptor on every exit path of open(), including the throwing ones.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile MappedFile::open(const std::filesystem::path& path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever, before the
  // regular-file check below could refuse it. It changes nothing for a regular file.
  FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (file.fd < 0) fail("{}: cannot open: {}", path.string(), errno_text(errno));

  struct stat status {};
  if (::fstat(file.fd, &status) != 0) fail("{}: cannot stat: {}", path.string(), errno_text(errno));
  // open() succeeds on directories; mmap would then fail with a less helpful ENODEV.
  if (!S_ISREG(status.st_mode)) fail("{}: not a regular file", path.string());

  const size_t size = size_t(status.st_size);
  // mmap rejects a zero length, and an empty file has nothing to map.
  if (size == 0) return MappedFile(path, nullptr, 0);

  void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, file.fd, 0);
  if (address == MAP_FAILED) fail("{}: cannot map {} bytes: {}", path.string(), size, errno_text(errno));

  // SEQUENTIAL on the descriptor widens the read-ahead window for the first pass over the file.
  // WILLNEED on the mapping starts that read now. We avoid POSIX_MADV_SEQUENTIAL on the mapping:
  // Linux then drops pages soon after they are touched, and CPU inference rereads the weights.
  ::posix_fadvise(file.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  ::posix_madvise(address, size, POSIX_MADV_WILLNEED);
  return MappedFile(path, static_cast<const std::byte*>(address), size);
}

MappedFile::MappedFile(std::filesystem::path path, const std::byte* data, size_t size)
    : path_(std::move(path)), data_(data), size_(size) {}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() { unmap(); }

void MappedFile::unmap() noexcept {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace shardlm
