//! Compiles the `.proto` files with `protox` (a pure-Rust protobuf compiler), so building needs no
//! system `protoc`, then generates prost messages and tonic clients and servers from them.

const PROTOS: [&str; 3] = ["ledger.proto", "raft.proto", "admin.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `compile_fds` does not know the source files, so say which ones invalidate the output.
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    tonic_prost_build::configure()
        // Maps decode into `BTreeMap`s: ordered like `tally_ledger::Metadata`, so a conversion
        // never depends on hash order.
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
