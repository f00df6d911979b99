//! `semdex embed`: vectors on stdout, one JSON array per input line.

use std::io::{BufRead, BufWriter, Write};

use clap::Args;

use super::GlobalArgs;

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Texts to embed; with none, one text per line is read from stdin. Each vector is what the
    /// model's sentence-transformers pipeline returns (unit length for all-MiniLM-L6-v2).
    pub texts: Vec<String>,
    /// Lines of stdin embedded together (larger batches pack better).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
}

pub fn run(global: &GlobalArgs, args: EmbedArgs) -> anyhow::Result<()> {
    let encoder = global.encoder()?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut emit = |texts: &[String]| -> anyhow::Result<()> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        for embedding in encoder.embed(&refs)? {
            serde_json::to_writer(&mut out, encoder.model_output(&embedding))?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    };
    if !args.texts.is_empty() {
        return emit(&args.texts);
    }
    let mut pending = Vec::with_capacity(args.batch);
    for line in std::io::stdin().lock().lines() {
        pending.push(line?);
        if pending.len() >= args.batch.max(1) {
            emit(&pending)?;
            pending.clear();
        }
    }
    if !pending.is_empty() {
        emit(&pending)?;
    }
    Ok(())
}
