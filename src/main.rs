/// mimalloc keeps freed buffers for reuse (see Cargo.toml).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(gradfit::cli::main());
}
