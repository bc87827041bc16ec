# cmake -DINPUT=X.pb.cc -DOUTPUT=lazy/X.pb.cc -P lazy_descriptors.cmake
# Copies a protoc-generated source without the static object that adds the
# file's descriptors to the generated pool at start (see CMakeLists.txt).
file(READ ${INPUT} text)
string(REGEX REPLACE "[^\n]*static ::_pbi::AddDescriptorsRunner dynamic_init_dummy_[^\n]*\n" "" text "${text}")
file(WRITE ${OUTPUT} "${text}")
