int hop_check_worker(int argc, char **argv) { (void)argc; (void)argv; return 2; }
