# A README snippet must be its file under tests/cmake verbatim (quickstart.cpp,
# which every consumer test compiles and runs; deploy_snippet.cpp, which the
# find_package consumer runs), so the snippet cannot rot.
#   cmake -DREADME=<README.md> -DSNIPPET=<quickstart.cpp> -P check_readme.cmake
file(READ "${README}" readme)
file(READ "${SNIPPET}" snippet)
string(FIND "${readme}" "```cpp\n${snippet}```" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "README.md's snippet differs from ${SNIPPET}; paste the file into its ```cpp block")
endif()
