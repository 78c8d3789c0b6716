"""Jobs built on the library: the benchmark (`bench`), the SPICE verification (`verify`), the
demo (`demo`) and model scoring on the reference clips (`scoring`). Commands call these; the
runtime never imports them."""
