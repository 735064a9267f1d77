//! The body of `sdk_alloc` and `sdk_alloc_std`, which differ only in their
//! allocator (see those files).

use chatflow_sdk::{Context, Error, Result};

pub fn run(ctx: &mut Context) -> Result<()> {
    let number = |name: &str| -> Result<usize> {
        ctx.require(name)?
            .parse()
            .map_err(|e| Error::msg(format!("property `{name}`: {e}")))
    };
    let (chunks, chunk) = (number("chunks")?, number("chunk_kib")? * 1024);
    let mut checksum = 0u64;
    let mut block = |i: usize| {
        let mut v = vec![0u8; chunk];
        v[i % chunk] = i as u8;
        checksum += u64::from(v[i % chunk]) + v.len() as u64;
        v
    };
    match ctx.require("mode")?.as_str() {
        "hold" => {
            let held: Vec<Vec<u8>> = (0..chunks).map(&mut block).collect();
            std::hint::black_box(&held);
        }
        "lifo" => {
            for i in 0..chunks {
                std::hint::black_box(block(i));
            }
        }
        "churn" => {
            // A small value allocated after each block and kept: the block
            // is never the most recent allocation when it is dropped.
            let mut kept = Vec::with_capacity(chunks);
            for i in 0..chunks {
                let big = block(i);
                kept.push(i.to_string());
                drop(std::hint::black_box(big));
            }
            std::hint::black_box(&kept);
        }
        other => return Err(Error::msg(format!("unknown mode {other:?}"))),
    }
    ctx.set("total_kib", (chunks * chunk / 1024).to_string())?;
    ctx.set("checksum", checksum.to_string())?;
    Ok(())
}
