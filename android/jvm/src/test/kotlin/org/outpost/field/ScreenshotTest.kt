package org.outpost.field

import androidx.compose.material3.MaterialTheme
import androidx.compose.runtime.Composable
import androidx.compose.runtime.CompositionLocalProvider
import androidx.compose.ui.ImageComposeScene
import androidx.compose.ui.unit.Density
import java.io.File
import java.nio.file.Files
import kotlin.test.assertTrue
import org.jetbrains.skia.EncodedImageFormat
import org.jetbrains.skia.Image
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.outpost.core.GrievanceInput
import org.outpost.core.Outpost
import org.outpost.field.shared.SessionModel
import org.outpost.field.ui.BeneficiaryScreen
import org.outpost.field.ui.DistributionScreen
import org.outpost.field.ui.EnrolScreen
import org.outpost.field.ui.FieldPlatform
import org.outpost.field.ui.GrievanceListScreen
import org.outpost.field.ui.GrievanceNewScreen
import org.outpost.field.ui.GrievanceScreen
import org.outpost.field.ui.LocalFieldPlatform
import org.outpost.field.ui.PayoutScreen
import org.outpost.field.ui.SearchScreen
import org.outpost.field.ui.SummaryScreen
import org.outpost.field.ui.SyncScreen
import org.outpost.field.ui.TimesheetScreen
import org.outpost.field.ui.UnlockScreen
import org.outpost.field.ui.VerificationScreen

/**
 * Renders every screen of the app with Compose for desktop, over a real core enrolled with a
 * real server (so the state is what a phone would show), and saves each as a PNG under
 * target/screenshots. A screen that fails to compose fails the test; so does a blank one.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ScreenshotTest {
    private val server = TestServer()
    private val dir = Files.createTempDirectory("outpost-screens").toFile()
    private val key = ByteArray(32) { (it * 5 + 1).toByte() }
    private val core = Outpost.open(dir.resolve("device.db").path, key)
    private val out = File(System.getProperty("outpost.screenshots") ?: "target/screenshots").apply { mkdirs() }

    private val desktop = object : FieldPlatform {
        @Composable
        override fun rememberQrScanner(onResult: (String) -> Unit): () -> Unit = {}

        override val deviceLabel = "JVM screenshot test"
    }

    init {
        core.enrol(server.url, server.enrolmentQr("agent.n-mz", "N-MZ").substringAfter("code="), "2580", "jvm", null)
        core.sync(null)
        core.recordCash(true, 50_000_000, "MWK", "float")
        core.recordStock(true, "MAIZE-25KG", 20, "")
    }

    @AfterAll
    fun close() {
        core.close()
        server.close()
        dir.deleteRecursively()
    }

    /** Composes, lets the screen's background loads finish, and saves what it shows. */
    private fun shoot(name: String, content: @Composable () -> Unit) {
        val scene = ImageComposeScene(width = 540, height = 1170, density = Density(1.5f)) {
            CompositionLocalProvider(LocalFieldPlatform provides desktop) {
                MaterialTheme { content() }
            }
        }
        try {
            var image: Image = scene.render()
            repeat(4) {
                Thread.sleep(150)
                image = scene.render()
            }
            val png = image.encodeToData(EncodedImageFormat.PNG)!!.bytes
            File(out, "$name.png").writeBytes(png)
            assertTrue(png.size > 4_000, "$name looks blank (${png.size} bytes)")
        } finally {
            scene.close()
        }
    }

    @Test
    fun `every screen renders with real state`() {
        val due = core.due(TestServer.today, 200u)
        val cash = due.first { it.entitlement.goods.isEmpty() }
        val kit = due.first { it.entitlement.goods.isNotEmpty() }
        val worker = core.projects().first().let { project ->
            // A cash-for-work beneficiary: the project's plan is CFW-ROADS.
            core.search("a", 500u).first { it.planCode == "CFW-ROADS" }.id.also { check(project.code.isNotEmpty()) }
        }
        val grievance = core.createGrievance(GrievanceInput(cash.beneficiary.id, core.grievanceCategories().first().code, "The pay point moved without notice"))
        core.commentGrievance(grievance, "Told the household the new place")

        val fresh = Outpost.open(dir.resolve("fresh.db").path, key)
        shoot("01-enrol") { EnrolScreen(SessionModel(fresh).also { it.refresh() }) }
        fresh.close()
        shoot("02-unlock") {
            val session = SessionModel(core)
            session.refresh()
            UnlockScreen(session)
        }
        shoot("03-search-due-today") { SearchScreen(core, open = {}, goTo = {}, onLock = {}) }
        shoot("04-beneficiary") { BeneficiaryScreen(core, cash.beneficiary.id, back = {}, goTo = {}) }
        shoot("05-payout") { PayoutScreen(core, cash.beneficiary.id, cash.entitlement.id, back = {}, done = {}) }
        shoot("06-distribution") { DistributionScreen(core, kit.beneficiary.id, kit.entitlement.id, back = {}, done = {}) }
        shoot("07-timesheet") { TimesheetScreen(core, worker, back = {}, done = {}) }
        shoot("08-verification") { VerificationScreen(core, cash.beneficiary.id, back = {}, done = {}) }
        shoot("09-grievances") { GrievanceListScreen(core, back = {}, open = {}, create = {}) }
        shoot("10-grievance-new") { GrievanceNewScreen(core, cash.beneficiary.id, back = {}, created = {}) }
        shoot("11-grievance") { GrievanceScreen(core, grievance, back = {}, written = {}) }
        shoot("12-sync") { SyncScreen(core, back = {}) }
        shoot("13-day-summary") { SummaryScreen(core, back = {}) }
        assertTrue(out.listFiles()!!.count { it.name.endsWith(".png") } >= 13)
    }
}
