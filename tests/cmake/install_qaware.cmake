# Installs qaware from BUILD_DIR into a fresh PREFIX and checks what landed
# there, including the version file's compatibility rule.
#   cmake -DBUILD_DIR=<qaware build> -DPREFIX=<dir> -P install_qaware.cmake
foreach(v BUILD_DIR PREFIX)
  if(NOT ${v})
    message(FATAL_ERROR "install_qaware.cmake: pass -D${v}=...")
  endif()
endforeach()

file(REMOVE_RECURSE "${PREFIX}")  # no stale files may hide a broken install
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()

set(cfg "${PREFIX}/share/cmake/qaware")
foreach(f include/qaware/qaware.hpp include/qaware/core/tensor.hpp include/qaware/autograd/tape.hpp
          include/qaware/ops/linear.hpp share/cmake/qaware/qawareConfig.cmake
          share/cmake/qaware/qawareConfigVersion.cmake share/cmake/qaware/qawareTargets.cmake)
  if(NOT EXISTS "${PREFIX}/${f}")
    message(FATAL_ERROR "missing after install: ${PREFIX}/${f}")
  endif()
endforeach()

# The version file: same major and minor version required (0.x is unstable).
file(STRINGS "${cfg}/qawareConfigVersion.cmake" line REGEX "set\\(PACKAGE_VERSION \"")
string(REGEX MATCH "\"([0-9]+)\\.([0-9]+)\\.([0-9]+)\"" _ "${line}")
set(major ${CMAKE_MATCH_1})
set(minor ${CMAKE_MATCH_2})
set(patch ${CMAKE_MATCH_3})
function(expect_compatible want expected)
  string(REPLACE "." ";" parts "${want}")
  list(GET parts 0 PACKAGE_FIND_VERSION_MAJOR)
  list(GET parts 1 PACKAGE_FIND_VERSION_MINOR)
  set(PACKAGE_FIND_VERSION "${want}")
  set(PACKAGE_FIND_VERSION_RANGE "")
  include("${cfg}/qawareConfigVersion.cmake")
  if(NOT "${PACKAGE_VERSION_COMPATIBLE}" STREQUAL "${expected}")
    message(FATAL_ERROR "version ${PACKAGE_VERSION} vs request ${want}: compatible=${PACKAGE_VERSION_COMPATIBLE}, expected ${expected}")
  endif()
endfunction()
expect_compatible("${major}.${minor}" TRUE)
expect_compatible("${major}.${minor}.${patch}" TRUE)
math(EXPR next_minor "${minor} + 1")
math(EXPR next_major "${major} + 1")
expect_compatible("${major}.${next_minor}" FALSE)
expect_compatible("${next_major}.${minor}" FALSE)
message(STATUS "qaware ${major}.${minor}.${patch} installed to ${PREFIX}")
