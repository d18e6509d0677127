# decentrun: the launcher wrapping Open MPI's mpirun (no link to the decent libraries).
add_executable(decentrun ${CMAKE_CURRENT_SOURCE_DIR}/decentrun.cpp)
target_link_libraries(decentrun PRIVATE CLI11::CLI11)
target_compile_options(decentrun PRIVATE ${DECENT_WARNINGS})
