/* libFuzzer's entry point for a program that has its own main (libclang_rt.fuzzer_no_main). */
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*test_one_input)(const uint8_t *data, size_t size));
