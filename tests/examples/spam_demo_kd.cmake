# The demo's distillation, LSQ scale rate and FP32 cache on the synthetic
# fixture (language model only, a tiny model, a few steps):
#   run A: W4A4 QAT and QAT-LSQ, the FP32 model saved to a cache;
#   run B: the same with --kd (distilled from the control) and --quant-lr,
#          the FP32 model loaded from the cache;
#   run C: the cache file replaced by garbage: refused with a message,
#          trained again, the same table as A.
# B must load the cache and match A in every row that the two options do
# not touch (FP32, control, PTQ), name its QAT rows QAT+KD / QAT-LSQ+KD,
# and differ from A in those rows.
#   cmake -DEXE=... -DDATA=... -DOUT=... -P spam_demo_kd.cmake
file(REMOVE_RECURSE "${OUT}")
set(args --data-dir "${DATA}" --tasks mlm --hidden 32 --heads 2 --ffn 64 --layers 1 --batch 8 --seq 48 --steps 12
         --ft-steps 6 --calib 2 --bits 4/4+lsq --threads 1 --no-plot --fp32-cache "${OUT}/cache")

include("${CMAKE_CURRENT_LIST_DIR}/spam_demo_helpers.cmake")
macro(read_rows name)
  spam_demo_read_rows("${OUT}/${name}/results.csv" ${name})
endmacro()

spam_demo_run(a)
if(NOT EXISTS "${OUT}/cache/mlm_fp32.safetensors")
  message(FATAL_ERROR "run a wrote no ${OUT}/cache/mlm_fp32.safetensors")
endif()
spam_demo_run(b --kd 0.5 --kd-temp 2 --quant-lr 0.002)
if(NOT out_b MATCHES "mlm FP32: loaded from")
  message(FATAL_ERROR "run b did not load the cached FP32 model")
endif()
read_rows(a)
read_rows(b)
foreach(key "mlm_FP32_-" "mlm_FP32_control_-" "mlm_PTQ_W4A4")
  if(NOT DEFINED "a_${key}" OR NOT "${a_${key}}" STREQUAL "${b_${key}}")
    message(FATAL_ERROR "${key}: '${a_${key}}' without the options, '${b_${key}}' with them")
  endif()
endforeach()
foreach(pair "mlm_QAT_W4A4:mlm_QAT+KD_W4A4" "mlm_QAT-LSQ_W4A4:mlm_QAT-LSQ+KD_W4A4")
  string(REPLACE ":" ";" pair "${pair}")
  list(GET pair 0 ka)
  list(GET pair 1 kb)
  if(NOT DEFINED "a_${ka}" OR NOT DEFINED "b_${kb}")
    message(FATAL_ERROR "missing row ${ka} (run a: ${a_keys}) or ${kb} (run b: ${b_keys})")
  endif()
  if("${a_${ka}}" STREQUAL "${b_${kb}}")
    message(FATAL_ERROR "${kb} equals ${ka} (${a_${ka}}): the options changed nothing")
  endif()
  message("${ka} ${a_${ka}} -> ${kb} ${b_${kb}}")
endforeach()

file(WRITE "${OUT}/cache/mlm_fp32.safetensors" "not a safetensors file")
spam_demo_run(c)
if(NOT out_c MATCHES "is unusable .*training again")
  message(FATAL_ERROR "run c did not refuse the damaged cache file")
endif()
read_rows(c)
foreach(key IN LISTS a_keys)
  if(NOT "${a_${key}}" STREQUAL "${c_${key}}")
    message(FATAL_ERROR "${key}: '${a_${key}}' in run a, '${c_${key}}' after retraining")
  endif()
endforeach()
