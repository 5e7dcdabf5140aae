# Compiles through ccache when it is installed (scripts/install-deps.sh installs it);
# included by CMakeLists.txt and fuzz/CMakeLists.txt before their targets.
#
# A cold build is ~1,000 CPU-seconds of g++ (Asio coroutines and Beast at -O3; see
# docs/build.md: precompiled headers measured slower). ccache keeps the objects, keyed by
# the preprocessed source and flags; base_dir (the repository root) makes the paths
# relative and nohashdir leaves the build directory out, so clean clones of this tree
# (CI's) share one cache.
option(FIREBREAK_CCACHE "Compile through ccache when it is installed" ON)
find_program(FIREBREAK_CCACHE_PROGRAM ccache)
if(FIREBREAK_CCACHE AND FIREBREAK_CCACHE_PROGRAM AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  get_filename_component(FIREBREAK_CCACHE_BASEDIR ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env
      CCACHE_BASEDIR=${FIREBREAK_CCACHE_BASEDIR} CCACHE_NOHASHDIR=1 ${FIREBREAK_CCACHE_PROGRAM})
endif()
