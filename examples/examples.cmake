add_executable(average_consensus ${CMAKE_CURRENT_SOURCE_DIR}/average_consensus.cpp)
target_link_libraries(average_consensus PRIVATE decent_comm CLI11::CLI11 fmt::fmt)
