# INT8 GEMM benchmark (issue #4): qaware_gemm_int8_bench. Included at the end
# of benchmarks/CMakeLists.txt.
#
# Options:
#   QAWARE_GEMM_WITH_DNNL      compare with oneDNN when find_package(dnnl CONFIG) finds it (ON)
#   QAWARE_GEMM_PORTABLE       link the gemm test and benchmark so they can be copied to another
#                              machine: static libstdc++/libgcc here (the test is fully static, see
#                              tests/gemm/CMakeLists.txt); scripts/gemm-device-bundle.sh adds the rest
#   QAWARE_GEMM_BENCH_ARCH     -march for this benchmark instead of QAWARE_NATIVE's -march=native
#                              (e.g. x86-64-v3 or x86-64-v4: the Eigen FP32 baseline should use the
#                              widest vectors of the machine it runs on; our kernels need no -march)
option(QAWARE_GEMM_WITH_DNNL "Benchmark oneDNN's matmul next to qaware's INT8 GEMM when found" ON)
option(QAWARE_GEMM_PORTABLE "Link the gemm test/benchmark for copying to another machine" OFF)
set(QAWARE_GEMM_BENCH_ARCH "" CACHE STRING "-march for qaware_gemm_int8_bench (empty: follow QAWARE_NATIVE)")

find_package(benchmark REQUIRED)
add_executable(qaware_gemm_int8_bench ${CMAKE_CURRENT_LIST_DIR}/gemm_int8_bench.cpp)
target_link_libraries(qaware_gemm_int8_bench PRIVATE qaware::qaware benchmark::benchmark)
if(QAWARE_GEMM_BENCH_ARCH)
  # qaware_dev_flags would add -march=native; take its warnings only. GCC 12
  # warns falsely about _mm512_undefined_* (its avx512fintrin.h) in Eigen's
  # AVX-512 code, hence -Wno-maybe-uninitialized.
  target_compile_options(qaware_gemm_int8_bench PRIVATE -Wall -Wextra -Wpedantic -Wno-maybe-uninitialized
                         -march=${QAWARE_GEMM_BENCH_ARCH})
else()
  target_link_libraries(qaware_gemm_int8_bench PRIVATE qaware_dev_flags)
endif()
if(QAWARE_GEMM_WITH_DNNL)
  find_package(dnnl CONFIG QUIET)
  if(dnnl_FOUND)
    target_link_libraries(qaware_gemm_int8_bench PRIVATE DNNL::dnnl)
    target_compile_definitions(qaware_gemm_int8_bench PRIVATE QAWARE_BENCH_HAVE_DNNL)
    message(STATUS "qaware: gemm benchmark compares with oneDNN ${dnnl_VERSION}")
  else()
    message(STATUS "qaware: oneDNN not found; the gemm benchmark runs without it")
  endif()
endif()
if(QAWARE_GEMM_PORTABLE)
  # libbenchmark and libdnnl exist only as shared objects here: the bundle
  # script copies them (and their dependencies) into ../lib, found through
  # this RPATH (DT_RPATH, which also serves libdnnl's own dependencies).
  target_link_options(qaware_gemm_int8_bench PRIVATE -static-libstdc++ -static-libgcc -Wl,--disable-new-dtags)
  set_target_properties(qaware_gemm_int8_bench PROPERTIES BUILD_RPATH "\$ORIGIN/../lib")
endif()
