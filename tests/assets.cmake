# Asset registry tests (tests/test_assets.c): hafl_asset_verify on the real assets and on damaged
# copies, and `hafl assets` (listing, --verify, --require). It needs base3M.bin, tok4096.bin and
# tok4096.model, which have no public address, and fails naming the places looked in when they
# are missing. Quick and pure C, so it also runs in the ASan+UBSan tree.
set_tests_properties(assets PROPERTIES TIMEOUT 120 LABELS asan)
# A value naming an existing file (./copy.bin, copy.bin, an absolute path) is that file, before
# the asset lookup (tests/asset_path.sh, through `hafl generate`). Needs stories260K.bin and
# tok512.bin; quick, so it also runs in the ASan+UBSan tree.
add_test(NAME asset_path COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/asset_path.sh)
set_tests_properties(asset_path PROPERTIES TIMEOUT 120 LABELS asan
    ENVIRONMENT "HAFL_BINARY=$<TARGET_FILE:hafl>")
