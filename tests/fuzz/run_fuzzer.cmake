# Runs one libFuzzer harness for SECONDS from its seed corpus and its past
# findings, in a scratch corpus directory; fails on any crash, leak,
# sanitizer report, timeout or out-of-memory. A crashing input is left in
# WORK/artifacts/: add it to tests/fuzz/regressions/<harness>/ with the fix.
#   cmake -DEXE=... -DHARNESS=... -DSRC=... -DWORK=... -DSECONDS=... -P run_fuzzer.cmake
set(corpus "${WORK}/${HARNESS}/corpus")
set(artifacts "${WORK}/${HARNESS}/artifacts/")
file(MAKE_DIRECTORY "${corpus}" "${artifacts}")
set(inputs "${SRC}/corpus/${HARNESS}")
if(IS_DIRECTORY "${SRC}/regressions/${HARNESS}")
  list(APPEND inputs "${SRC}/regressions/${HARNESS}")
endif()
set(dict "")
if(EXISTS "${SRC}/${HARNESS}.dict")
  set(dict "-dict=${SRC}/${HARNESS}.dict")
endif()
execute_process(
  COMMAND "${EXE}" -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024
          -print_final_stats=1 -artifact_prefix=${artifacts} ${dict} "${corpus}" ${inputs}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" execs "${err}")
string(REGEX MATCH "Done [0-9]+ runs in [0-9]+ second" done "${err}")
message("${HARNESS}: ${done} (${execs})")
if(NOT rc EQUAL 0)
  string(LENGTH "${err}" n)
  if(n GREATER 6000)
    math(EXPR start "${n} - 6000")
    string(SUBSTRING "${err}" ${start} 6000 err)
  endif()
  message(FATAL_ERROR "fuzzing ${HARNESS} failed (exit ${rc}); the input is in ${artifacts}\n${err}")
endif()
