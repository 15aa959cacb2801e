# qaware_fake_quant_bench: fake-quantization throughput (see fake_quant_bench.cpp).
# Included from benchmarks/CMakeLists.txt.
if(NOT TARGET benchmark::benchmark)
  find_package(benchmark REQUIRED)
endif()
add_executable(qaware_fake_quant_bench ${CMAKE_CURRENT_LIST_DIR}/fake_quant_bench.cpp)
target_link_libraries(qaware_fake_quant_bench PRIVATE qaware::qaware qaware_dev_flags benchmark::benchmark)
