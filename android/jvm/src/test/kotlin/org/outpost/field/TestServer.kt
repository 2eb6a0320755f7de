package org.outpost.field

import java.io.File
import java.nio.file.Files
import java.time.LocalDate
import java.util.concurrent.TimeUnit

/**
 * A real `outpost-server` (the binary scripts/test builds) with the demo programme, on a
 * loopback port, in a temporary data directory.
 */
class TestServer(households: Int = 40) : AutoCloseable {
    private val bin = File(System.getProperty("outpost.server.bin") ?: error("outpost.server.bin is not set"))
    private val dir: File = Files.createTempDirectory("outpost-jvm").toFile()
    private val data = File(dir, "data")
    private val process: Process
    val url: String

    /** The day the demo is generated as of (the test's today): what is due is due on it. */
    val day: String = today

    init {
        require(bin.canExecute()) { "$bin is missing: build it with `cargo build -p outpost-server`" }
        cli("demo", "--households", households.toString(), "--as-of", day)
        process = ProcessBuilder(bin.path, "--data", data.path, "serve", "--listen", "127.0.0.1:0")
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start()
        val line = process.inputStream.bufferedReader().readLine() ?: error("the server did not start")
        url = line.removePrefix("listening on ").trim()
    }

    /** Runs a server subcommand on the same data directory; its standard output. */
    fun cli(vararg args: String): String {
        val p = ProcessBuilder(listOf(bin.path, "--data", data.path) + args)
            .redirectError(ProcessBuilder.Redirect.PIPE)
            .start()
        val out = p.inputStream.bufferedReader().readText()
        val err = p.errorStream.bufferedReader().readText()
        check(p.waitFor(60, TimeUnit.SECONDS) && p.exitValue() == 0) { "outpost-server ${args.toList()}: $err" }
        return out
    }

    /** A one-time enrolment code, as the QR payload the app scans. */
    fun enrolmentQr(agent: String, assignment: String): String {
        val json = cli("enrol-code", "--agent", agent, "--assignment", assignment)
        return Regex("\"qr_payload\":\\s*\"([^\"]+)\"").find(json)?.groupValues?.get(1)
            ?: error("no qr_payload in $json")
    }

    companion object {
        /** This test run's today, taken once so a run across midnight keeps one cycle. */
        val today: String by lazy { LocalDate.now().toString() }
    }

    override fun close() {
        process.destroy()
        process.waitFor(10, TimeUnit.SECONDS)
        dir.deleteRecursively()
    }
}
