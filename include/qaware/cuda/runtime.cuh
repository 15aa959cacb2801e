#pragma once
// The CUDA runtime as qaware uses it: every runtime call that can fail goes
// through QAWARE_CUDA_CHECK, which turns a failure into a qaware::Error naming
// the call, CUDA's error name and message; DeviceBuffer<T> owns device memory.
//
// Compiled only by nvcc (a .cu translation unit) or by a host compiler that
// has the CUDA runtime's headers; the rest of qaware never includes this.

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "qaware/core/error.hpp"
#include "qaware/core/shape.hpp"

namespace qaware {
namespace cuda {
namespace detail {

inline void check(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return;
  // Clear the runtime's last-error record, so that a caught failure (an
  // allocation too large, say) is not reported again by the next call that
  // reads it, such as the check after a kernel launch. A sticky error (a
  // faulted context) keeps being returned by every call regardless.
  (void)cudaGetLastError();
  throw Error(std::string("CUDA: ") + call + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

}  // namespace detail

// Runs a CUDA runtime call and throws qaware::Error naming it when it fails.
#define QAWARE_CUDA_CHECK(call) ::qaware::cuda::detail::check((call), #call)

// The number of usable CUDA devices: 0 where there is no device, no driver,
// or a driver too old for this runtime (never throws; device_status() says why).
inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

// "" when a device is usable, else why not (the runtime's error), for messages.
inline std::string device_status() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  }
  return n > 0 ? std::string() : std::string("cudaGetDeviceCount found no device");
}

// `count` elements of T in device memory, freed on destruction. Move-only.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(Index count) { allocate(count); }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }

  T* data() { return p_; }
  const T* data() const { return p_; }
  Index size() const { return n_; }
  bool empty() const { return n_ == 0; }

  // Copies `count` elements from host memory; returns when they are on the
  // device (cudaMemcpy from pageable memory may return once the data is
  // staged, and a kernel on a non-blocking stream is not ordered after it).
  void upload(const T* host, Index count) {
    QAWARE_CHECK(count >= 0 && count <= n_, "DeviceBuffer::upload: ", count, " elements into a buffer of ", n_);
    if (count == 0) return;
    QAWARE_CUDA_CHECK(cudaMemcpy(p_, host, bytes(count), cudaMemcpyHostToDevice));
    QAWARE_CUDA_CHECK(cudaDeviceSynchronize());
  }
  // Copies `count` elements to host memory, after the work queued before it
  // on the default stream (cudaMemcpy's ordering).
  void download(T* host, Index count) const {
    QAWARE_CHECK(count >= 0 && count <= n_, "DeviceBuffer::download: ", count, " elements from a buffer of ", n_);
    if (count > 0) QAWARE_CUDA_CHECK(cudaMemcpy(host, p_, bytes(count), cudaMemcpyDeviceToHost));
  }

 private:
  static std::size_t bytes(Index count) { return static_cast<std::size_t>(count) * sizeof(T); }
  void allocate(Index count) {
    QAWARE_CHECK(count >= 0 && static_cast<std::size_t>(count) <= static_cast<std::size_t>(-1) / sizeof(T),
                 "DeviceBuffer: cannot hold ", count, " elements of ", sizeof(T), " bytes");
    if (count == 0) return;
    void* p = nullptr;
    QAWARE_CUDA_CHECK(cudaMalloc(&p, bytes(count)));
    p_ = static_cast<T*>(p);
    n_ = count;
  }
  void reset() {
    if (p_ != nullptr) cudaFree(p_);  // no throw from a destructor; a failed free leaks at worst
    p_ = nullptr;
    n_ = 0;
  }

  T* p_ = nullptr;
  Index n_ = 0;
};

}  // namespace cuda
}  // namespace qaware
