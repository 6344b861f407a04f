// checksum(bytes | path, algorithm) off the JS thread, checksumSync for small buffers.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common.h"
#include "hash.h"
#include "regions.h"

namespace pm {

namespace {

constexpr size_t kReadChunk = 4u << 20;

enum class Algorithm { kXxh64, kCrc32c };

bool ArgAlgorithm(const Napi::CallbackInfo& info, size_t index, Algorithm* out) {
  std::string name = "xxh64";
  if (info.Length() > index && !info[index].IsUndefined()) {
    if (!ArgString(info, index, "algorithm", &name)) return false;
  }
  if (name == "xxh64") {
    *out = Algorithm::kXxh64;
  } else if (name == "crc32c") {
    *out = Algorithm::kCrc32c;
  } else {
    Throw(info.Env(), "EINVAL", "unknown checksum algorithm \"" + name + "\": use \"xxh64\" or \"crc32c\"");
    return false;
  }
  return true;
}

class Hasher {
 public:
  explicit Hasher(Algorithm algorithm) : algorithm_(algorithm) {}
  void Update(const uint8_t* data, size_t length) {
    if (algorithm_ == Algorithm::kXxh64) {
      xxh_.Update(data, length);
    } else {
      crc_.Update(data, length);
    }
  }
  std::string Text() const {
    char buf[32];
    if (algorithm_ == Algorithm::kXxh64) {
      std::snprintf(buf, sizeof buf, "xxh64:%016" PRIx64, xxh_.Digest());
    } else {
      std::snprintf(buf, sizeof buf, "crc32c:%08" PRIx32, crc_.Digest());
    }
    return buf;
  }

 private:
  Algorithm algorithm_;
  Xxh64 xxh_;
  Crc32c crc_;
};

class ChecksumWorker : public PromiseWorker {
 public:
  // Bytes: pinned and referenced until the promise settles.
  ChecksumWorker(Napi::Env env, Algorithm algorithm, const Napi::Object& holder, const uint8_t* data, size_t length)
      : PromiseWorker(env, "pm:checksum"),
        hasher_(algorithm),
        holder_(Napi::Persistent(holder)),
        pin_(data, length),
        data_(data),
        length_(length) {}

  ChecksumWorker(Napi::Env env, Algorithm algorithm, std::string path)
      : PromiseWorker(env, "pm:checksum"), hasher_(algorithm), path_(std::move(path)) {}

 protected:
  void Execute() override {
    if (path_.empty()) {
      hasher_.Update(data_, length_);
      return;
    }
    int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      failure_ = SysFailure("open", errno, path_, "");
      return;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    void* raw = nullptr;
    if (posix_memalign(&raw, 4096, kReadChunk) != 0) {
      failure_ = SysFailure("posix_memalign", ENOMEM, "read buffer", "");
      close(fd);
      return;
    }
    uint8_t* buffer = static_cast<uint8_t*>(raw);
    for (;;) {
      ssize_t n = read(fd, buffer, kReadChunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        failure_ = SysFailure("read", errno, path_, "");
        break;
      }
      if (n == 0) break;
      hasher_.Update(buffer, static_cast<size_t>(n));
    }
    free(buffer);
    close(fd);
  }

  void Finish() override {
    pin_.Reset();
    if (!holder_.IsEmpty()) holder_.Reset();
  }

  Napi::Value Result(Napi::Env env) override { return Napi::String::New(env, hasher_.Text()); }

 private:
  Hasher hasher_;
  Napi::ObjectReference holder_;
  RegionPin pin_;
  const uint8_t* data_ = nullptr;
  size_t length_ = 0;
  std::string path_;
};

// checksum(bytes | absolutePath, algorithm = "xxh64") -> Promise<"xxh64:<16 hex>" | "crc32c:<8 hex>">
Napi::Value Checksum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Algorithm algorithm;
  if (!ArgAlgorithm(info, 1, &algorithm)) return env.Undefined();
  if (info.Length() > 0 && info[0].IsString()) {
    std::string path;
    if (!ArgString(info, 0, "path", &path)) return env.Undefined();
    if (path.empty() || path[0] != '/') return Throw(env, "EINVAL", "path must be absolute, got \"" + path + "\"");
    return (new ChecksumWorker(env, algorithm, path))->Start();
  }
  uint8_t* data = nullptr;
  size_t length = 0;
  Napi::Object holder;
  if (!ArgBytes(info, 0, "source", &data, &length, &holder)) return env.Undefined();
  return (new ChecksumWorker(env, algorithm, holder, data, length))->Start();
}

// checksumSync(bytes, algorithm = "xxh64") -> string, on the calling thread.
Napi::Value ChecksumSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Algorithm algorithm;
  uint8_t* data = nullptr;
  size_t length = 0;
  if (!ArgBytes(info, 0, "bytes", &data, &length, nullptr) || !ArgAlgorithm(info, 1, &algorithm)) {
    return env.Undefined();
  }
  Hasher hasher(algorithm);
  hasher.Update(data, length);
  return Napi::String::New(env, hasher.Text());
}

}  // namespace

void InitChecksum(Napi::Env env, Napi::Object exports) {
  exports.Set("checksum", Napi::Function::New(env, Checksum, "checksum"));
  exports.Set("checksumSync", Napi::Function::New(env, ChecksumSync, "checksumSync"));
}

}  // namespace pm
