//! Compiles the .proto files with protox (pure Rust), so a fresh machine
//! needs no protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/fedsoc/v1/federation.proto"];
    let fds = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
