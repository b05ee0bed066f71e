fn main() {
    std::process::exit(gradfit::cli::main());
}
