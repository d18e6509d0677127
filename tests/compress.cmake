# Compressors, error feedback and compressed neighbour averaging (layer 3), on the in-process
# backend.
if(TARGET decent_compress)
  add_executable(compress_tests
    ${CMAKE_CURRENT_LIST_DIR}/compress/compressor_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/compress/gossip_test.cpp)
  target_link_libraries(compress_tests PRIVATE decent_compress decent_topology GTest::gtest_main)
  target_compile_options(compress_tests PRIVATE ${DECENT_WARNINGS})
  gtest_discover_tests(compress_tests DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT 120 LABELS "compress")
endif()
