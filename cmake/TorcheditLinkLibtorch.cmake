# torchedit_link_libtorch_runtime(<target>): how the addon links the libtorch FindLibtorch found.
# Separate from FindLibtorch.cmake so test/install/cudaLink.test.ts can run it against a fake
# CUDA libtorch (no GPU or CUDA libtorch on this project's machines).
#
# Inputs: TORCH_LIBRARY (a library in libtorch's lib/ folder), TORCH_CXX_FLAGS, Torch_VERSION,
# optionally CUDA_VERSION / CUDAToolkit_VERSION (set by a CUDA TorchConfig.cmake), and
# TORCHEDIT_PREBUILD (ON for scripts/prebuild.mjs).
#
#  - CUDA: a CUDA libtorch is detected by libtorch_cuda.so next to libtorch.so. Nothing the addon
#    calls is defined in libtorch_cuda — its CUDA kernels and hooks register themselves from
#    static initialisers — so a linker with --as-needed (Ubuntu's default) drops it and CUDA is
#    silently absent. It is linked explicitly, with --no-as-needed, so it is in NEEDED.
#  - TORCHEDIT_COMPUTE ("cpu"/"cuda") and TORCHEDIT_CUDA_VERSION are compiled in, and reported
#    by runtimeInfo().
#  - A sidecar <addon>.json next to the built .node records the libtorch it was built against
#    (version, C++ ABI, cpu/cuda, folder); the run-time loader reads it to check a source build
#    against the libtorch it finds, and scripts/prebuild.mjs to name the prebuild.
#  - RPATH: a source build gets libtorch's folder as RUNPATH (it works even when loaded by hand);
#    a prebuild gets none — it must run with libtorch wherever the user has it, and the loader
#    loads libtorch by absolute path first.
function(torchedit_link_libtorch_runtime target)
  get_filename_component(_torch_lib_dir "${TORCH_LIBRARY}" DIRECTORY)
  get_filename_component(_torch_lib_dir "${_torch_lib_dir}" REALPATH)

  set(_compute cpu)
  set(_cuda_version "")
  set(_cuda_libs "")
  foreach(_name torch_cuda c10_cuda)
    if(EXISTS "${_torch_lib_dir}/lib${_name}.so")
      list(APPEND _cuda_libs "${_torch_lib_dir}/lib${_name}.so")
    endif()
  endforeach()
  if(NOT _cuda_libs AND TARGET torch_cuda)
    set(_cuda_libs torch_cuda)  # an unusual layout: TorchConfig knows where it is
  endif()
  if(_cuda_libs)
    set(_compute cuda)
    if(CUDA_VERSION)
      set(_cuda_version "${CUDA_VERSION}")
    elseif(CUDAToolkit_VERSION)
      set(_cuda_version "${CUDAToolkit_VERSION}")
    endif()
    # Before the objects and libraries on the link line, after the compiler's own --as-needed.
    target_link_options(${target} PRIVATE "LINKER:--no-as-needed")
    target_link_libraries(${target} PRIVATE ${_cuda_libs})
  endif()

  set(_abi "null")
  if("${TORCH_CXX_FLAGS}" MATCHES "_GLIBCXX_USE_CXX11_ABI=1")
    set(_abi "true")
  elseif("${TORCH_CXX_FLAGS}" MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
    set(_abi "false")
  endif()

  target_compile_definitions(${target} PRIVATE
    TORCHEDIT_COMPUTE="${_compute}" TORCHEDIT_CUDA_VERSION="${_cuda_version}")

  if(TORCHEDIT_PREBUILD)
    set_target_properties(${target} PROPERTIES SKIP_BUILD_RPATH ON)
  else()
    set_target_properties(${target} PROPERTIES BUILD_RPATH "${_torch_lib_dir}" INSTALL_RPATH "${_torch_lib_dir}")
  endif()

  file(GENERATE OUTPUT "$<TARGET_FILE_DIR:${target}>/$<TARGET_FILE_BASE_NAME:${target}>.json" CONTENT
"{
  \"torchVersion\": \"${Torch_VERSION}\",
  \"cxx11Abi\": ${_abi},
  \"compute\": \"${_compute}\",
  \"cudaVersion\": \"${_cuda_version}\",
  \"libDir\": \"${_torch_lib_dir}\"
}
")
  message(STATUS "torchedit: building for ${_compute}${_cuda_version} libtorch in ${_torch_lib_dir}")
endfunction()
