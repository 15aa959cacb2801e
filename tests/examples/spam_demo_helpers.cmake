# Helpers of the demo's CMake tests.
#
# spam_demo_run(NAME [ARGS...]): runs ${EXE} ${args} --out-dir ${OUT}/NAME ARGS
# (EXE, args and OUT from the calling script), prints its output, fails the
# test on a non-zero exit and sets out_NAME to its stdout.
function(spam_demo_run name)
  execute_process(COMMAND "${EXE}" ${args} --out-dir "${OUT}/${name}" ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run ${name} failed (${rc}):\n${err}")
  endif()
  set(out_${name} "${out}" PARENT_SCOPE)
endfunction()

# spam_demo_read_rows(CSV PREFIX): reads a demo results.csv; sets
# PREFIX_<task>_<method>_<bits> (spaces in the method become _) to "<metric1> <metric2>" for every row (the
# last row wins where a key repeats, e.g. controls of two lengths) and
# PREFIX_keys to the list of <task>_<method>_<bits>.
function(spam_demo_read_rows csv prefix)
  file(STRINGS "${csv}" lines)
  set(keys "")
  foreach(line IN LISTS lines)
    string(REPLACE "," ";" f "${line}")
    list(LENGTH f n)
    if(n LESS 7)
      continue()
    endif()
    list(GET f 0 task)
    list(GET f 1 method)
    string(REPLACE " " "_" method "${method}")  # "INT8 export" -> INT8_export: ${} takes no spaces
    list(GET f 2 bits)
    list(GET f 4 m1)
    list(GET f 6 m2)
    set("${prefix}_${task}_${method}_${bits}" "${m1} ${m2}" PARENT_SCOPE)
    list(APPEND keys "${task}_${method}_${bits}")
  endforeach()
  set(${prefix}_keys "${keys}" PARENT_SCOPE)
endfunction()
