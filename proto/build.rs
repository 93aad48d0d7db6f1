//! Compiles the `.proto` files with `protox` (a pure-Rust protobuf compiler), so building needs no
//! system `protoc`, then generates prost messages and tonic clients and servers from them.

const PROTOS: [&str; 5] = [
    "ledger.proto",
    "raft.proto",
    "admin.proto",
    "payments_node.proto",
    "payments.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `compile_fds` does not know the source files, so say which ones invalidate the output.
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    // The same descriptors, for the gateway's gRPC reflection service.
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("tally_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        // Maps decode into `BTreeMap`s: ordered like `tally_ledger::Metadata`, so a conversion
        // never depends on hash order.
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
