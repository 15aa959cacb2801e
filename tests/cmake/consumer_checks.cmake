# Checks shared by the consumer projects: the imported/aliased qaware target
# carries no -march (users keep their own flags) and no sanitizer flags.
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
