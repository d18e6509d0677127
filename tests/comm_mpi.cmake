# MPI transport tests (multi-process, run under mpiexec) and the decentrun launcher tests.

# The MPI backend built from its own sources rather than taken from decent_comm, so that these
# tests depend on nothing but the transport interface and the backend.
file(GLOB DECENT_MPI_BACKEND_SRC CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/comm/mpi/*.cpp)
add_library(decent_mpi_backend_for_tests STATIC
  ${DECENT_MPI_BACKEND_SRC}
  ${PROJECT_SOURCE_DIR}/src/comm/types.cpp)
target_include_directories(decent_mpi_backend_for_tests PUBLIC ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(decent_mpi_backend_for_tests PUBLIC decent_topology MPI::MPI_CXX
                                                          Threads::Threads)
target_compile_options(decent_mpi_backend_for_tests PRIVATE ${DECENT_WARNINGS})

add_executable(mpi_transport_tests
  comm_mpi/mpi_test_main.cpp
  comm_mpi/mpi_transport_test.cpp)
target_link_libraries(mpi_transport_tests PRIVATE decent_mpi_backend_for_tests GTest::gtest)
target_compile_options(mpi_transport_tests PRIVATE ${DECENT_WARNINGS})
foreach(n 1 2 3 4 5 8)
  decent_add_mpi_test(mpi_transport_np${n} mpi_transport_tests ${n})
endforeach()

# decentrun: a small MPI program to launch, and tests that run the launcher as a user would.
add_executable(decentrun_test_program comm_mpi/decentrun_test_program.cpp)
target_link_libraries(decentrun_test_program PRIVATE decent_mpi_backend_for_tests)
target_compile_options(decentrun_test_program PRIVATE ${DECENT_WARNINGS})

add_executable(decentrun_tests comm_mpi/decentrun_test.cpp)
target_link_libraries(decentrun_tests PRIVATE GTest::gtest_main Threads::Threads)
target_compile_options(decentrun_tests PRIVATE ${DECENT_WARNINGS})
target_compile_definitions(decentrun_tests PRIVATE
  DECENTRUN_PATH="$<TARGET_FILE:decentrun>"
  TEST_PROGRAM_PATH="$<TARGET_FILE:decentrun_test_program>")
add_dependencies(decentrun_tests decentrun decentrun_test_program)
add_test(NAME decentrun_tests COMMAND decentrun_tests)
set_tests_properties(decentrun_tests PROPERTIES TIMEOUT 300 LABELS mpi PROCESSORS 2)
