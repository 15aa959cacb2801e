# Checks shared by the consumer projects.

# The imported/aliased qaware target carries no -march (users keep their own
# flags) and no sanitizer flags.
function(qaware_consumer_check_target tgt)
  if(NOT TARGET ${tgt})
    message(FATAL_ERROR "${tgt} is not a target")
  endif()
  foreach(prop INTERFACE_COMPILE_OPTIONS INTERFACE_LINK_OPTIONS)
    get_target_property(v ${tgt} ${prop})
    if(v AND v MATCHES "march|fsanitize")
      message(FATAL_ERROR "${tgt} ${prop} must not force '${v}' on its users")
    endif()
  endforeach()
endfunction()

# find_package consumers: the package must come from the fresh install under
# QAWARE_EXPECTED_PREFIX (when given), not from some other copy.
function(qaware_consumer_check_prefix)
  if(DEFINED QAWARE_EXPECTED_PREFIX)
    file(REAL_PATH "${qaware_DIR}" found_dir)
    file(REAL_PATH "${QAWARE_EXPECTED_PREFIX}" prefix)
    string(FIND "${found_dir}" "${prefix}/" pos)
    if(NOT pos EQUAL 0)
      message(FATAL_ERROR "qaware was found in ${found_dir}, expected under ${prefix}")
    endif()
  endif()
  message(STATUS "qaware ${qaware_VERSION} from ${qaware_DIR}")
endfunction()

# Projects whose point is a build without -march: a -march in the flags the
# user's environment supplies (CXXFLAGS) would make them prove nothing.
function(qaware_consumer_check_no_march)
  if(CMAKE_CXX_FLAGS MATCHES "march" OR CMAKE_CXX_FLAGS_${CMAKE_BUILD_TYPE} MATCHES "march")
    message(FATAL_ERROR "this consumer test must build without -march, but the flags are "
                        "'${CMAKE_CXX_FLAGS} ${CMAKE_CXX_FLAGS_${CMAKE_BUILD_TYPE}}' (unset CXXFLAGS)")
  endif()
endfunction()
