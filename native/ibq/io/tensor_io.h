// Reading and writing tensor bytes for the checkpoint formats (torch.save zip and legacy files,
// safetensors, npy). Pure libtorch: the containers' metadata (pickles, JSON headers) is parsed in
// lib/io; this layer reads the storages the metadata points at and builds the tensors, and writes files.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ibq::io {

// One storage to read: a record of a torch.save zip archive, or a byte range of a plain file.
struct StorageSpec {
  std::string record;       // zip: record name inside the archive folder, e.g. "data/0"
  int64_t file_offset = 0;  // plain files: where the bytes start
  int64_t nbytes = 0;       // bytes the metadata says the storage holds (numel * element size)
  at::ScalarType dtype = at::kByte;
  bool byteswap = false;    // stored big-endian: reverse the bytes of each element after reading
  // The bytes lie uncompressed in the file (a stored zip record, or a plain byte range): they may be
  // memory-mapped instead of read (see load_tensors).
  bool mappable = false;
};

// A tensor viewing a storage (in elements of the storage's dtype), as torch's _rebuild_tensor_v2 makes it.
struct TensorSpec {
  int64_t storage = 0;  // index into the storages
  std::vector<int64_t> sizes, strides;
  int64_t offset = 0;
};

// The bytes of one record of a torch.save zip archive (name relative to the archive folder, e.g.
// "data.pkl"). Throws c10::Error on a malformed archive or a missing record.
std::string read_zip_record(const std::string& path, const std::string& name);

// Reads every storage once (zip records through caffe2's PyTorchStreamReader, or byte ranges of a plain
// file) and returns one tensor per TensorSpec; tensors of one storage share its memory. A `mappable`
// storage whose bytes are aligned to its element size and need no byte swap is not read: its tensor views a
// private (copy-on-write) memory map of the file, so loading costs no copy and no resident memory until the
// data is touched; writing to such a tensor copies the touched pages, never changes the file, and moving it
// to another device copies it. The map lives as long as any tensor using it. (As with any memory map, a
// file truncated in place by another program while mapped faults on access; saveCheckpoint replaces files
// atomically, which is safe.) Set IBQ_NO_MMAP=1 to always read. Throws
// ibq::ValueError when a record/range is smaller than the metadata says, or a view (sizes, strides,
// offset) reaches outside its storage; c10::Error for a malformed archive.
std::vector<at::Tensor> load_tensors(const std::string& path, bool zip, const std::vector<StorageSpec>& storages,
                                     const std::vector<TensorSpec>& tensors);

// One record to write: raw bytes, or a tensor (written as its contiguous CPU bytes).
struct RecordSpec {
  std::string name;
  std::string bytes;
  at::Tensor tensor;
};

// Writes a torch.save (torch 1.13 layout) zip archive at `path` with caffe2's PyTorchStreamWriter (the
// archive folder is the file name's stem; "version" is added at the end), then fsyncs it.
void write_zip(const std::string& path, const std::vector<RecordSpec>& records);

// Writes the parts one after another (bytes or tensor bytes) to `path` (created/truncated), then fsyncs.
void write_file(const std::string& path, const std::vector<RecordSpec>& parts);

}  // namespace ibq::io
