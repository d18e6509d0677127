# decent-bench-mpi-receive: posted receives against MPI_Improbe matching, raw MPI (2 ranks).
add_executable(decent-bench-mpi-receive ${CMAKE_CURRENT_LIST_DIR}/mpi_receive.cpp)
target_link_libraries(decent-bench-mpi-receive PRIVATE MPI::MPI_CXX CLI11::CLI11 fmt::fmt)
target_compile_options(decent-bench-mpi-receive PRIVATE ${DECENT_WARNINGS})
