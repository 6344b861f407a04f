// Streaming checksums: XXH64 (implemented from the public xxHash specification)
// and CRC-32C (Castagnoli, the checksum S3 offers as x-amz-checksum-crc32c).
#pragma once

#include <cstddef>
#include <cstdint>

namespace pm {

class Xxh64 {
 public:
  explicit Xxh64(uint64_t seed = 0);
  void Update(const uint8_t* data, size_t length);
  uint64_t Digest() const;

 private:
  uint64_t seed_;
  uint64_t acc_[4];
  uint8_t pending_[32];
  size_t pending_len_ = 0;
  uint64_t total_ = 0;
};

class Crc32c {
 public:
  void Update(const uint8_t* data, size_t length);
  uint32_t Digest() const { return ~state_; }

 private:
  uint32_t state_ = 0xFFFFFFFFu;
};

}  // namespace pm
