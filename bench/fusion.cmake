# decent-bench-fusion: neighbour averaging of many small tensors, fused vs unfused vs one flat
# buffer, and the flat buffer on the ring and static exponential graphs (run under decentrun).
add_executable(decent-bench-fusion ${CMAKE_CURRENT_LIST_DIR}/fusion.cpp)
target_link_libraries(decent-bench-fusion PRIVATE decent_comm decent_topology CLI11::CLI11
                                                  fmt::fmt)
target_compile_options(decent-bench-fusion PRIVATE ${DECENT_WARNINGS})
