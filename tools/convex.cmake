# decent_convex: convex test problems with known optima and the decentralized solvers (Eigen
# vectors on a Context, no LibTorch); decent-bench-convex runs them and plots the errors.
file(GLOB DECENT_CONVEX_SRC CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/convex/*.cpp)
add_library(decent_convex STATIC ${DECENT_CONVEX_SRC})
target_include_directories(decent_convex PUBLIC ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(decent_convex PUBLIC decent_comm Eigen3::Eigen
                                    PRIVATE fmt::fmt nlohmann_json::nlohmann_json)
target_compile_options(decent_convex PRIVATE ${DECENT_WARNINGS})
# Two units of two sources (Eigen parsed twice rather than four times).
set_target_properties(decent_convex PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 2)

# Debian's python3-matplotlib belongs to the system interpreter: prefer it to any other python3.
find_program(DECENT_CONVEX_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT DECENT_CONVEX_PYTHON3)
  find_program(DECENT_CONVEX_PYTHON3 python3)
endif()
if(NOT DECENT_CONVEX_PYTHON3)
  set(DECENT_CONVEX_PYTHON3 python3)
endif()

add_executable(decent-bench-convex ${CMAKE_CURRENT_LIST_DIR}/decent_bench_convex.cpp)
target_link_libraries(decent-bench-convex PRIVATE decent_convex CLI11::CLI11 fmt::fmt)
target_compile_options(decent-bench-convex PRIVATE ${DECENT_WARNINGS})
target_compile_definitions(decent-bench-convex PRIVATE
  DECENT_PYTHON3="${DECENT_CONVEX_PYTHON3}"
  DECENT_PLOT_CONVEX_SCRIPT="${PROJECT_SOURCE_DIR}/scripts/plot_convex.py")
