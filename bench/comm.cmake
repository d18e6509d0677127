# decent-bench-comm: our communication primitives against raw MPI (run under mpiexec).
add_executable(decent-bench-comm ${CMAKE_CURRENT_LIST_DIR}/comm.cpp)
target_link_libraries(decent-bench-comm PRIVATE decent_comm decent_topology MPI::MPI_CXX
                                                CLI11::CLI11 fmt::fmt)
target_compile_options(decent-bench-comm PRIVATE ${DECENT_WARNINGS})
