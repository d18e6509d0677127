# decent-bench-codec: encode and decode time per compressor (Google Benchmark, single thread).
find_package(benchmark QUIET)
if(benchmark_FOUND AND TARGET decent_compress)
  add_executable(decent-bench-codec ${CMAKE_CURRENT_LIST_DIR}/codec.cpp)
  target_link_libraries(decent-bench-codec PRIVATE decent_compress benchmark::benchmark)
  target_compile_options(decent-bench-codec PRIVATE ${DECENT_WARNINGS})
endif()
