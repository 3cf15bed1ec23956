fn main() {
    print!("{}", spiffile_operator::crd::crds_yaml().unwrap());
}
