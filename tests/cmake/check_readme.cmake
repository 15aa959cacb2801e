# The README's quick-start snippet must be tests/cmake/quickstart.cpp verbatim
# (which every consumer test compiles and runs), so the snippet cannot rot.
#   cmake -DREADME=<README.md> -DSNIPPET=<quickstart.cpp> -P check_readme.cmake
file(READ "${README}" readme)
file(READ "${SNIPPET}" snippet)
string(FIND "${readme}" "```cpp\n${snippet}```" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "README.md's quick start differs from ${SNIPPET}; paste the file into the ```cpp block")
endif()
