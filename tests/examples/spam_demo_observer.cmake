# The demo's --act-observer on the synthetic fixture (language model only, a
# tiny model, a few steps):
#   run A: W8A8 and W4A4 with the default moving min / max observers, the
#          FP32 model saved to a cache;
#   run B: the same with --act-observer mse, the FP32 model loaded from it.
# B must match A where no activation is observed (FP32, control), differ in
# the W4A4 PTQ row (other activation ranges), and its exported W8A8 model must
# equal its QAT model (the demo compares every logit and fails otherwise).
#   cmake -DEXE=... -DDATA=... -DOUT=... -P spam_demo_observer.cmake
file(REMOVE_RECURSE "${OUT}")
set(args --data-dir "${DATA}" --tasks mlm --hidden 32 --heads 2 --ffn 64 --layers 1 --batch 8 --seq 48 --steps 12
         --ft-steps 6 --calib 2 --bits 8/8,4/4 --threads 1 --no-plot --fp32-cache "${OUT}/cache")

include("${CMAKE_CURRENT_LIST_DIR}/spam_demo_helpers.cmake")
spam_demo_run(a)
spam_demo_run(b --act-observer mse)
if(NOT out_b MATCHES "mlm FP32: loaded from")
  message(FATAL_ERROR "run b did not load the cached FP32 model")
endif()
spam_demo_read_rows("${OUT}/a/results.csv" a)
spam_demo_read_rows("${OUT}/b/results.csv" b)
foreach(key "mlm_FP32_-" "mlm_FP32_control_-")
  if(NOT DEFINED "a_${key}" OR NOT "${a_${key}}" STREQUAL "${b_${key}}")
    message(FATAL_ERROR "${key}: '${a_${key}}' with min / max observers, '${b_${key}}' with mse")
  endif()
endforeach()
if(NOT DEFINED a_mlm_PTQ_W4A4 OR "${a_mlm_PTQ_W4A4}" STREQUAL "${b_mlm_PTQ_W4A4}")
  message(FATAL_ERROR "PTQ W4A4 is '${a_mlm_PTQ_W4A4}' with both observers: --act-observer changed nothing")
endif()
if(NOT DEFINED b_mlm_INT8_export_W8A8 OR NOT "${b_mlm_INT8_export_W8A8}" STREQUAL "${b_mlm_QAT_W8A8}")
  message(FATAL_ERROR "with mse: INT8 export '${b_mlm_INT8_export_W8A8}', QAT '${b_mlm_QAT_W8A8}'")
endif()
message("PTQ W4A4: min / max ${a_mlm_PTQ_W4A4}, mse ${b_mlm_PTQ_W4A4}")
