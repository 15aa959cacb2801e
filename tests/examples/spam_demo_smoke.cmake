# Smoke run of the main demo (qaware_bert_qat_spam) on the synthetic fixture:
# a tiny model, both tasks, a few steps. Checks that the program succeeds,
# writes the CSV, the JSON and the loss curves (the PNG when gnuplot exists),
# and that the exported INT8 model's metrics equal the QAT model's. The
# second setting (W4A4 with attention's operands at 8 bits, 8 fine-tuning
# steps, an LSQ run) must bring a control of its own length.
#   cmake -DEXE=... -DDATA=... -DOUT=... -P spam_demo_smoke.cmake
file(REMOVE_RECURSE "${OUT}")
execute_process(
  COMMAND "${EXE}" --data-dir "${DATA}" --out-dir "${OUT}" --hidden 32 --heads 2 --ffn 64 --layers 1
          --batch 8 --seq 48 --steps 12 --ft-steps 6 --calib 2 --bits 8/8,4/4/8@8+lsq --threads 1
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the demo failed (${rc}):\n${err}")
endif()
foreach(needle "corpus " "46 training emails" "9 test emails" "3 skipped" "skipped, empty file" "INT8 export")
  if(NOT "${out}${err}" MATCHES "${needle}")
    message(FATAL_ERROR "the output lacks '${needle}'")
  endif()
endforeach()
foreach(f results.csv results.json loss_curves.tsv)
  if(NOT EXISTS "${OUT}/${f}")
    message(FATAL_ERROR "missing ${OUT}/${f}")
  endif()
endforeach()
find_program(GNUPLOT gnuplot)
if(GNUPLOT AND NOT EXISTS "${OUT}/loss_curves.png")
  message(FATAL_ERROR "gnuplot exists (${GNUPLOT}) but ${OUT}/loss_curves.png was not written")
endif()

# The INT8 row must carry the QAT W8A8 row's metrics exactly, for each task.
file(STRINGS "${OUT}/results.csv" lines)
foreach(row "cls,FP32 control,.*,6$" "cls,FP32 control,.*,8$" "mlm,FP32 control,.*,8$" "mlm,QAT,W4A4-att8,.*,8$"
            "mlm,QAT-LSQ,W4A4-att8,.*,8$" "mlm,PTQ,W4A4-att8,.*,8$" "mlm,QAT,W8A8,.*,6$")
  set(found FALSE)
  foreach(line IN LISTS lines)
    if(line MATCHES "^${row}")
      set(found TRUE)
    endif()
  endforeach()
  if(NOT found)
    message(FATAL_ERROR "results.csv has no row matching '${row}'")
  endif()
endforeach()
include("${CMAKE_CURRENT_LIST_DIR}/spam_demo_helpers.cmake")
spam_demo_read_rows("${OUT}/results.csv" r)
foreach(task cls mlm)
  set(qat "${r_${task}_QAT_W8A8}")
  set(int8 "${r_${task}_INT8_export_W8A8}")
  if(qat STREQUAL "" OR NOT qat STREQUAL int8)
    message(FATAL_ERROR "${task}: QAT W8A8 metrics '${qat}' vs INT8 export '${int8}'")
  endif()
  message("${task}: QAT W8A8 = INT8 export = ${qat}")
endforeach()
file(READ "${OUT}/results.json" json)
string(JSON rows LENGTH "${json}" rows)
if(rows LESS 10)
  message(FATAL_ERROR "results.json has ${rows} rows")
endif()
