#include "ibq/io/tensor_io.h"

#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "ibq/core/errors.h"

namespace ibq::io {
namespace {

std::string Shape(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string Errno(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// An open file descriptor, closed on scope exit.
struct Fd {
  int fd = -1;
  Fd(const std::string& path, int flags, const char* what) : fd(::open(path.c_str(), flags | O_CLOEXEC, 0644)) {
    if (fd < 0) throw std::runtime_error(Errno(what, path));
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int64_t size() const {
    struct stat st;
    return ::fstat(fd, &st) == 0 ? int64_t(st.st_size) : -1;
  }
};

void ReadFully(int fd, char* dst, int64_t n, int64_t offset, const std::string& path) {
  while (n > 0) {
    ssize_t got = ::pread(fd, dst, size_t(std::min<int64_t>(n, 1 << 30)), offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw std::runtime_error(Errno("reading", path));
    if (got == 0) throw ibq::ValueError(path + ": unexpected end of file at byte " + std::to_string(offset));
    dst += got, n -= got, offset += got;
  }
}

void WriteFully(int fd, const char* src, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t put = ::write(fd, src, std::min<size_t>(n, size_t(1) << 30));
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) throw std::runtime_error(Errno("writing", path));
    src += put, n -= size_t(put);
  }
}

void Fsync(const std::string& path) {
  Fd f(path, O_RDONLY, "opening");
  if (::fsync(f.fd) != 0) throw std::runtime_error(Errno("fsync of", path));
}

// A private, writable (copy-on-write) memory map of a whole file; unmapped when the last tensor using it goes.
struct Mapping {
  void* addr = MAP_FAILED;
  size_t len = 0;
  ~Mapping() {
    if (addr != MAP_FAILED) ::munmap(addr, len);
  }
};

// Maps `fd` (size `size`), or returns null when mapping is off (IBQ_NO_MMAP=1) or fails (then the caller
// reads instead).
std::shared_ptr<Mapping> MapFile(int fd, int64_t size) {
  const char* off = std::getenv("IBQ_NO_MMAP");
  if ((off && off[0] == '1') || size <= 0) return nullptr;
  auto m = std::make_shared<Mapping>();
  m->len = size_t(size);
  m->addr = ::mmap(nullptr, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (m->addr == MAP_FAILED) return nullptr;
  return m;
}

// A byte tensor viewing [offset, offset + nbytes) of the mapping (which it keeps alive).
at::Tensor MappedBytes(const std::shared_ptr<Mapping>& m, int64_t offset, int64_t nbytes) {
  auto* keep = new std::shared_ptr<Mapping>(m);
  void* ptr = static_cast<char*>(m->addr) + offset;
  at::DataPtr data(ptr, keep, [](void* ctx) { delete static_cast<std::shared_ptr<Mapping>*>(ctx); }, at::kCPU);
  c10::Storage storage(c10::Storage::use_byte_size_t(), nbytes, std::move(data), nullptr, false);
  return at::empty({0}, at::kByte).set_(storage);
}

// Whether storage `s` at byte `offset` of a file of `file_size` bytes can be viewed in place.
bool CanMap(const std::shared_ptr<Mapping>& m, const StorageSpec& s, int64_t offset, int64_t file_size) {
  const int64_t el = int64_t(c10::elementSize(s.dtype));
  return m && s.mappable && !s.byteswap && s.nbytes > 0 && offset >= 0 && offset % el == 0 &&
         offset <= file_size - s.nbytes;
}

// The byte view of a tensor to write: contiguous CPU bytes.
at::Tensor Bytes(const at::Tensor& t) {
  at::Tensor c = t.detach().to(at::kCPU).contiguous();
  return c;
}

// The storage of `bytes` as elements of `dtype` (bytes already the right size).
at::Tensor AsElements(at::Tensor bytes, const StorageSpec& s) {
  int64_t el = int64_t(c10::elementSize(s.dtype));
  if (s.byteswap && el > 1) bytes = bytes.view({-1, el}).flip({1}).contiguous().view({-1});
  return bytes.view(s.dtype);
}

// Checks that the view fits inside a storage of `numel` elements (no overflow on absurd sizes).
void CheckView(const TensorSpec& t, int64_t numel, const std::string& path) {
  if (t.sizes.size() != t.strides.size())
    throw ibq::ValueError(path + ": tensor sizes " + Shape(t.sizes) + " and strides " + Shape(t.strides) +
                          " differ in length");
  if (t.offset < 0) throw ibq::ValueError(path + ": negative storage offset " + std::to_string(t.offset));
  __int128 last = t.offset, elements = 1;
  bool empty = false;
  for (int64_t d : t.sizes) elements = std::min<__int128>(elements * std::max<int64_t>(d, 0), __int128(1) << 62);
  if (elements > (__int128(1) << 48))
    throw ibq::ValueError(path + ": a tensor of sizes " + Shape(t.sizes) + " has more than 2^48 elements");
  for (size_t i = 0; i < t.sizes.size(); ++i) {
    if (t.sizes[i] < 0 || t.strides[i] < 0)
      throw ibq::ValueError(path + ": negative size or stride in " + Shape(t.sizes) + " / " + Shape(t.strides));
    if (t.sizes[i] == 0) empty = true;
    else last += __int128(t.sizes[i] - 1) * t.strides[i];
  }
  if (!empty && last >= numel)
    throw ibq::ValueError(path + ": a tensor of sizes " + Shape(t.sizes) + ", strides " + Shape(t.strides) +
                          " at offset " + std::to_string(t.offset) + " needs a storage of at least " +
                          std::to_string(int64_t(std::min<__int128>(last + 1, INT64_MAX))) +
                          " elements, but it holds " + std::to_string(numel));
}

}  // namespace

std::string read_zip_record(const std::string& path, const std::string& name) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  if (!reader.hasRecord(name)) throw ibq::ValueError(path + ": the archive has no record '" + name + "'");
  auto [ptr, size] = reader.getRecord(name);
  return std::string(static_cast<const char*>(ptr.get()), size);
}

std::vector<at::Tensor> load_tensors(const std::string& path, bool zip, const std::vector<StorageSpec>& storages,
                                     const std::vector<TensorSpec>& tensors) {
  std::vector<at::Tensor> data(storages.size());
  std::vector<int64_t> numels(storages.size());
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::unique_ptr<Fd> file;
  if (zip) reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  bool any_mappable = false;
  for (const auto& s : storages) any_mappable |= s.mappable;
  if (!zip || any_mappable) file = std::make_unique<Fd>(path, O_RDONLY, "opening");
  const int64_t file_size = file ? file->size() : 0;
  std::shared_ptr<Mapping> mapping = any_mappable ? MapFile(file->fd, file_size) : nullptr;
  for (size_t i = 0; i < storages.size(); ++i) {
    const StorageSpec& s = storages[i];
    int64_t el = int64_t(c10::elementSize(s.dtype));
    if (s.nbytes < 0 || s.nbytes % el != 0)
      throw ibq::ValueError(path + ": storage " + (zip ? s.record : std::to_string(i)) + " has " +
                            std::to_string(s.nbytes) + " bytes, not a multiple of its element size");
    at::Tensor bytes;
    if (zip) {
      if (!reader->hasRecord(s.record))
        throw ibq::ValueError(path + ": the archive has no record '" + s.record + "'");
      if (mapping) {
        const int64_t offset = int64_t(reader->getRecordOffset(s.record));
        if (CanMap(mapping, s, offset, file_size)) {
          data[i] = AsElements(MappedBytes(mapping, offset, s.nbytes), s);
          numels[i] = s.nbytes / el;
          continue;
        }
      }
      auto [ptr, size] = reader->getRecord(s.record);
      if (int64_t(size) < s.nbytes)
        throw ibq::ValueError(path + ": record '" + s.record + "' holds " + std::to_string(size) +
                              " bytes, but its storage needs " + std::to_string(s.nbytes));
      c10::Storage storage(c10::Storage::use_byte_size_t(), int64_t(size), std::move(ptr), nullptr, false);
      bytes = at::empty({0}, at::kByte).set_(storage).narrow(0, 0, s.nbytes);
    } else {
      if (s.file_offset < 0 || s.nbytes > file_size || s.file_offset > file_size - s.nbytes)
        throw ibq::ValueError(path + ": bytes [" + std::to_string(s.file_offset) + ", " +
                              std::to_string(s.file_offset + s.nbytes) + ") lie outside the file (" +
                              std::to_string(file_size) + " bytes)");
      if (CanMap(mapping, s, s.file_offset, file_size)) {
        data[i] = AsElements(MappedBytes(mapping, s.file_offset, s.nbytes), s);
        numels[i] = s.nbytes / el;
        continue;
      }
      bytes = at::empty({s.nbytes}, at::kByte);
      ReadFully(file->fd, static_cast<char*>(bytes.data_ptr()), s.nbytes, s.file_offset, path);
    }
    data[i] = AsElements(bytes, s);
    numels[i] = s.nbytes / el;
  }
  std::vector<at::Tensor> out;
  out.reserve(tensors.size());
  for (const TensorSpec& t : tensors) {
    if (t.storage < 0 || size_t(t.storage) >= data.size())
      throw ibq::ValueError(path + ": tensor refers to storage " + std::to_string(t.storage) + " of " +
                            std::to_string(data.size()));
    CheckView(t, numels[t.storage], path);
    out.push_back(data[t.storage].as_strided(t.sizes, t.strides, t.offset));
  }
  return out;
}

void write_zip(const std::string& path, const std::vector<RecordSpec>& records) {
  {
    caffe2::serialize::PyTorchStreamWriter writer(path);
    for (const RecordSpec& r : records) {
      if (r.tensor.defined()) {
        at::Tensor b = Bytes(r.tensor);
        writer.writeRecord(r.name, b.data_ptr(), size_t(b.numel()) * b.element_size());
      } else {
        writer.writeRecord(r.name, r.bytes.data(), r.bytes.size());
      }
    }
    writer.writeEndOfFile();
  }
  Fsync(path);
}

void write_file(const std::string& path, const std::vector<RecordSpec>& parts) {
  Fd f(path, O_WRONLY | O_CREAT | O_TRUNC, "creating");
  for (const RecordSpec& r : parts) {
    if (r.tensor.defined()) {
      at::Tensor b = Bytes(r.tensor);
      WriteFully(f.fd, static_cast<const char*>(b.data_ptr()), size_t(b.numel()) * b.element_size(), path);
    } else {
      WriteFully(f.fd, r.bytes.data(), r.bytes.size(), path);
    }
  }
  if (::fsync(f.fd) != 0) throw std::runtime_error(Errno("fsync of", path));
}

}  // namespace ibq::io
