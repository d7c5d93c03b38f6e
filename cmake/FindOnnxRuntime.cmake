# SPDX-License-Identifier: Apache-2.0
#
# FindOnnxRuntime: locates a prebuilt ONNX Runtime (C API header and shared
# library) and wraps it in an imported target.
#
# Search order; the first source that is configured wins, and the later ones
# are not tried:
#   1. ORT_ROOT, as a CMake variable or an environment variable: a folder
#      with include/ (or include/onnxruntime/) and lib/ (or lib64/).
#   2. pkg-config module "libonnxruntime".
#   3. ${PROJECT_SOURCE_DIR}/third_party/ort, filled by
#      scripts/install-ort.sh.
#
# Result variables:
#   OnnxRuntime_FOUND          true when header and library were found
#   OnnxRuntime_INCLUDE_DIR    folder holding onnxruntime_c_api.h
#   OnnxRuntime_LIBRARY        full path of libonnxruntime
#   OnnxRuntime_LIBRARY_DIR    its folder (for LD_LIBRARY_PATH in tests)
#   OnnxRuntime_API_VERSION    ORT_API_VERSION of the header
#   OnnxRuntime_VERSION        from pkg-config, else 1.<API version>
#   OnnxRuntime_SOURCE         "ORT_ROOT", "pkg-config" or "third_party"
#
# Imported target:
#   OnnxRuntime::OnnxRuntime   SHARED IMPORTED; IMPORTED_LOCATION is the
#                              library's absolute path, so CMake links it by
#                              path and puts its folder in the build RPATH.

include(FindPackageHandleStandardArgs)

# ---- Which source to search ----

set(_ort_root "")
if(DEFINED ORT_ROOT AND NOT "${ORT_ROOT}" STREQUAL "")
  set(_ort_root "${ORT_ROOT}")
elseif(DEFINED ENV{ORT_ROOT} AND NOT "$ENV{ORT_ROOT}" STREQUAL "")
  set(_ort_root "$ENV{ORT_ROOT}")
endif()

unset(_ort_pc_found)
if(_ort_root STREQUAL "")
  find_package(PkgConfig QUIET)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(PC_OnnxRuntime QUIET libonnxruntime)
    if(PC_OnnxRuntime_FOUND)
      set(_ort_pc_found TRUE)
    endif()
  endif()
endif()

if(NOT _ort_root STREQUAL "")
  set(OnnxRuntime_SOURCE "ORT_ROOT")
  set(_ort_key "ORT_ROOT=${_ort_root}")
elseif(_ort_pc_found)
  set(OnnxRuntime_SOURCE "pkg-config")
  set(_ort_key "pkg-config=${PC_OnnxRuntime_PREFIX}")
else()
  set(OnnxRuntime_SOURCE "third_party")
  set(_ort_key "third_party=${PROJECT_SOURCE_DIR}")
endif()

# find_path and find_library cache their results; when the source changed
# since the last configure, the cached paths belong to the old one.
if(DEFINED _OnnxRuntime_SEARCH_KEY
   AND NOT "${_OnnxRuntime_SEARCH_KEY}" STREQUAL "${_ort_key}")
  unset(OnnxRuntime_INCLUDE_DIR CACHE)
  unset(OnnxRuntime_LIBRARY CACHE)
endif()
set(_OnnxRuntime_SEARCH_KEY "${_ort_key}" CACHE INTERNAL
    "where FindOnnxRuntime last searched")

# ---- Header and library ----

set(_ort_include_suffixes include include/onnxruntime
                          include/onnxruntime/core/session)

if(OnnxRuntime_SOURCE STREQUAL "ORT_ROOT")
  find_path(OnnxRuntime_INCLUDE_DIR onnxruntime_c_api.h
            PATHS "${_ort_root}"
            PATH_SUFFIXES ${_ort_include_suffixes}
            NO_DEFAULT_PATH)
  find_library(OnnxRuntime_LIBRARY NAMES onnxruntime
               PATHS "${_ort_root}"
               PATH_SUFFIXES lib lib64
               NO_DEFAULT_PATH)
elseif(OnnxRuntime_SOURCE STREQUAL "pkg-config")
  find_path(OnnxRuntime_INCLUDE_DIR onnxruntime_c_api.h
            HINTS ${PC_OnnxRuntime_INCLUDEDIR} ${PC_OnnxRuntime_INCLUDE_DIRS}
            PATH_SUFFIXES onnxruntime onnxruntime/core/session)
  find_library(OnnxRuntime_LIBRARY NAMES onnxruntime
               HINTS ${PC_OnnxRuntime_LIBDIR} ${PC_OnnxRuntime_LIBRARY_DIRS})
else()
  find_path(OnnxRuntime_INCLUDE_DIR onnxruntime_c_api.h
            PATHS "${PROJECT_SOURCE_DIR}/third_party/ort"
            PATH_SUFFIXES include
            NO_DEFAULT_PATH)
  find_library(OnnxRuntime_LIBRARY NAMES onnxruntime
               PATHS "${PROJECT_SOURCE_DIR}/third_party/ort"
               PATH_SUFFIXES lib
               NO_DEFAULT_PATH)
endif()

# ---- Version ----

unset(OnnxRuntime_API_VERSION)
if(OnnxRuntime_INCLUDE_DIR
   AND EXISTS "${OnnxRuntime_INCLUDE_DIR}/onnxruntime_c_api.h")
  file(STRINGS "${OnnxRuntime_INCLUDE_DIR}/onnxruntime_c_api.h" _ort_api_line
       REGEX "^#define[ \t]+ORT_API_VERSION[ \t]+[0-9]+")
  if(_ort_api_line MATCHES "ORT_API_VERSION[ \t]+([0-9]+)")
    set(OnnxRuntime_API_VERSION "${CMAKE_MATCH_1}")
  endif()
endif()

if(OnnxRuntime_SOURCE STREQUAL "pkg-config" AND PC_OnnxRuntime_VERSION)
  set(OnnxRuntime_VERSION "${PC_OnnxRuntime_VERSION}")
elseif(DEFINED OnnxRuntime_API_VERSION)
  # Since 1.0, release 1.N ships API version N.
  set(OnnxRuntime_VERSION "1.${OnnxRuntime_API_VERSION}")
endif()

if(OnnxRuntime_SOURCE STREQUAL "ORT_ROOT")
  set(_ort_fail "not found under ORT_ROOT '${_ort_root}'")
elseif(OnnxRuntime_SOURCE STREQUAL "pkg-config")
  set(_ort_fail "pkg-config module libonnxruntime is incomplete")
else()
  set(_ort_fail "run scripts/install-ort.sh, or set ORT_ROOT")
endif()

find_package_handle_standard_args(OnnxRuntime
  REQUIRED_VARS OnnxRuntime_LIBRARY OnnxRuntime_INCLUDE_DIR
  VERSION_VAR OnnxRuntime_VERSION
  REASON_FAILURE_MESSAGE "${_ort_fail}")

# ---- Imported target ----

if(OnnxRuntime_FOUND)
  get_filename_component(OnnxRuntime_LIBRARY_DIR "${OnnxRuntime_LIBRARY}"
                         DIRECTORY)
  if(NOT TARGET OnnxRuntime::OnnxRuntime)
    add_library(OnnxRuntime::OnnxRuntime SHARED IMPORTED)
    set_target_properties(OnnxRuntime::OnnxRuntime PROPERTIES
      IMPORTED_LOCATION "${OnnxRuntime_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${OnnxRuntime_INCLUDE_DIR}")
    # The SONAME of ORT 1.x is libonnxruntime.so.1; naming it lets CMake
    # compute install-time RPATH dependencies correctly.
    if(EXISTS "${OnnxRuntime_LIBRARY_DIR}/libonnxruntime.so.1")
      set_target_properties(OnnxRuntime::OnnxRuntime PROPERTIES
        IMPORTED_SONAME "libonnxruntime.so.1")
    endif()
  endif()
endif()

mark_as_advanced(OnnxRuntime_INCLUDE_DIR OnnxRuntime_LIBRARY)

unset(_ort_root)
unset(_ort_pc_found)
unset(_ort_key)
unset(_ort_include_suffixes)
unset(_ort_api_line)
unset(_ort_fail)
