//! `semdex chunk`: the passages of one document as JSON lines.

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{ChunkArgs, GlobalArgs};

#[derive(Args, Debug)]
pub struct ChunkCmdArgs {
    /// The document (UTF-8 text); `-` reads stdin.
    pub file: PathBuf,
    /// Document id written into each chunk (default: the file name).
    #[arg(long)]
    pub id: Option<String>,
    #[command(flatten)]
    pub chunking: ChunkArgs,
}

pub fn run(global: &GlobalArgs, args: ChunkCmdArgs) -> anyhow::Result<()> {
    let encoder = global.encoder()?;
    let chunker = args.chunking.chunker(&encoder)?;
    let text = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("stdin is not valid UTF-8 text")?;
        text
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {} as UTF-8 text", args.file.display()))?
    };
    let id = args
        .id
        .unwrap_or_else(|| args.file.to_string_lossy().into_owned());
    let mut out = BufWriter::new(std::io::stdout().lock());
    let tokenizer = encoder.tokenizer();
    for chunk in chunker.chunk(&id, &text) {
        let tokens = tokenizer.count(&chunk.text)?;
        let line = serde_json::json!({
            "doc_id": chunk.doc_id,
            "index": chunk.index,
            "start": chunk.start,
            "end": chunk.end,
            "tokens": tokens,
            "text": chunk.text,
        });
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
