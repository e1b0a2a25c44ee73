fn main() {
    eprintln!("oni: the node command lands with the shell");
    std::process::exit(2);
}
