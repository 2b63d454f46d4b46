# Finds libtorch in the order of docs/install.md:
#   1. TORCHEDIT_LIBTORCH or LIBTORCH (environment): a libtorch folder (its root, its lib/ folder
#      or Python's torch package) — the only place looked at, as for the run-time loader
#   2. Torch_DIR (CMake variable or environment; scripts/install.mjs passes the libtorch the
#      run-time loader chose, so the source build and the loader agree)
#   3. Python's torch (its share/cmake folder, when it ships one)
#   4. the system (Debian/Ubuntu: apt-get install libtorch-dev libopenblas0-pthread)
set(_torchedit_hints "")
set(_torchedit_explicit "")
foreach(_var TORCHEDIT_LIBTORCH LIBTORCH)
  if(DEFINED ENV{${_var}} AND NOT "$ENV{${_var}}" STREQUAL "")
    set(_torchedit_explicit "$ENV{${_var}}")
    set(TORCHEDIT_TORCH_SOURCE "${_var}=$ENV{${_var}}")
    break()
  endif()
endforeach()
if(NOT _torchedit_explicit AND NOT Torch_DIR AND DEFINED ENV{Torch_DIR})
  set(Torch_DIR "$ENV{Torch_DIR}")
endif()
if(NOT _torchedit_explicit AND NOT Torch_DIR)
  foreach(_python python3 /usr/bin/python3)
    execute_process(COMMAND ${_python} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                    OUTPUT_VARIABLE _py_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                    ERROR_QUIET RESULT_VARIABLE _py_rc)
    if(_py_rc EQUAL 0 AND EXISTS "${_py_prefix}/Torch/TorchConfig.cmake")
      list(APPEND _torchedit_hints "${_py_prefix}")
      set(TORCHEDIT_TORCH_SOURCE "python torch (${_python})")
      break()
    endif()
  endforeach()
endif()

if(_torchedit_explicit)
  # TorchConfig.cmake of a zip or pip torch (share/cmake/Torch), of a lib/ folder (cmake/Torch),
  # or of the folder above a lib/ folder; nowhere else.
  set(_e "${_torchedit_explicit}")
  find_package(Torch QUIET NO_DEFAULT_PATH PATHS "${_e}" "${_e}/share/cmake/Torch" "${_e}/cmake/Torch"
               "${_e}/lib/cmake/Torch" "${_e}/../share/cmake/Torch")
else()
  find_package(Torch QUIET HINTS ${_torchedit_hints})
endif()
if(NOT Torch_FOUND)
  if(_torchedit_explicit)
    message(FATAL_ERROR "torchedit: no TorchConfig.cmake for ${TORCHEDIT_TORCH_SOURCE} (looked in it, its "
      "share/cmake/Torch, cmake/Torch and lib/cmake/Torch): point it at a libtorch folder, or unset it.")
  endif()
  message(FATAL_ERROR
    "torchedit: libtorch was not found.\n"
    "Get one of:\n"
    "  - Debian/Ubuntu: apt-get install libtorch-dev libopenblas0-pthread\n"
    "  - a libtorch folder (pytorch.org 'LibTorch' download): export TORCHEDIT_LIBTORCH=/path/to/libtorch\n"
    "  - Python's torch: pip install torch (found through python3)\n"
    "then run npm rebuild torchedit --build-from-source.")
endif()
if(NOT TORCHEDIT_TORCH_SOURCE)
  set(TORCHEDIT_TORCH_SOURCE "find_package (${Torch_DIR})")
endif()
message(STATUS "torchedit: libtorch ${Torch_VERSION} from ${TORCHEDIT_TORCH_SOURCE}")

include(${CMAKE_CURRENT_LIST_DIR}/TorcheditLinkLibtorch.cmake)
