# Python tests of decent.torch under decentrun at n = 1, 2, 4 (included by python/CMakeLists.txt).
foreach(n 1 2 4)
  add_test(NAME python_np${n}
           COMMAND $<TARGET_FILE:decentrun> -np ${n} ${Python3_EXECUTABLE} -m pytest -q
                   -p no:cacheprovider ${CMAKE_CURRENT_LIST_DIR})
  set_tests_properties(python_np${n} PROPERTIES
    TIMEOUT 300 LABELS "mpi;python" PROCESSORS 2
    ENVIRONMENT "PYTHONPATH=${DECENT_PYTHON_DIR};OMP_NUM_THREADS=1")
endforeach()
