package org.outpost.field

import java.nio.file.Files
import kotlin.test.assertContains
import kotlin.test.assertEquals
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.MethodOrderer
import org.junit.jupiter.api.Order
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.TestMethodOrder
import org.junit.jupiter.api.assertThrows
import org.outpost.core.Outpost
import org.outpost.core.OutpostException
import org.outpost.core.PayoutInput
import org.outpost.core.ProofInput
import org.outpost.core.SyncListener
import org.outpost.core.SyncPhase
import org.outpost.core.SyncProgressInfo
import org.outpost.field.shared.BeneficiaryModel
import org.outpost.field.shared.PayoutModel
import org.outpost.field.shared.Proof
import org.outpost.field.shared.SearchModel
import org.outpost.field.shared.SessionModel
import org.outpost.field.shared.SummaryModel
import org.outpost.field.shared.SyncModel

/**
 * One agent's day through the Kotlin bindings and the app's view-state models, against the
 * host-built core and a real server: enrol, unlock, sync, search, pay (refused, then paid),
 * sync with progress, revocation. The rules themselves are the Rust tests' business; this
 * checks the binding layer and the Kotlin over it.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation::class)
class FieldScenarioTest {
    private val server = TestServer()
    private val dir = Files.createTempDirectory("outpost-device").toFile()
    private val core = Outpost.open(dir.resolve("device.db").path, ByteArray(32) { (it * 7 + 3).toByte() })
    private val session = SessionModel(core)
    private val sync = SyncModel(core)
    private lateinit var deviceId: String

    @BeforeAll
    fun enrol() {
        assertFalse(core.status().enrolled)
        // A mistyped PIN confirmation is caught before the code is spent.
        val qr = server.enrolmentQr("agent.n-mz", "N-MZ")
        assertFalse(session.enrol(server.url, qr, "2580", "2850", "jvm test"))
        assertEquals("The two PINs differ", session.state.value.error)
        assertTrue(session.enrol(server.url, qr, "2580", "2580", "jvm test"), session.state.value.error)
        val status = session.state.value.status!!
        assertTrue(status.enrolled && status.unlocked)
        assertEquals("agent.n-mz", status.agentUsername)
        deviceId = status.deviceId!!
    }

    @AfterAll
    fun close() {
        core.close()
        server.close()
        dir.deleteRecursively()
    }

    @Test
    @Order(1)
    fun `the PIN unlocks and a wrong one says how many tries are left`() {
        session.lock()
        assertThrows<OutpostException.LoginRequired> { core.search("a", 5u) }
        assertFalse(session.unlock("1357"))
        assertContains(session.state.value.error!!, "4 attempts left")
        assertTrue(session.unlock("2580"))
        assertNull(session.state.value.error)
    }

    @Test
    @Order(2)
    fun `the first sync downloads the assignment and says up to date`() {
        sync.refresh()
        assertEquals("Not synced yet", sync.state.value.headline)
        assertTrue(sync.sync(), sync.state.value.error)
        val s = sync.state.value
        assertTrue(s.lastReport!!.replicaRows > 0uL)
        assertEquals(SyncPhase.DONE, s.phase)
        assertEquals("Up to date", s.headline)
    }

    @Test
    @Order(3)
    fun `search finds who is due, and a payout is refused then made`() {
        val search = SearchModel(core)
        search.loadDue(TestServer.today)
        val due = search.state.value.dueToday.first { it.entitlement.goods.isEmpty() }
        val name = due.beneficiary.name
        search.search(name.take(3).lowercase())
        assertTrue(search.state.value.results.any { it.id == due.beneficiary.id }, "searched ${name.take(3)}")

        val beneficiary = BeneficiaryModel(core)
        beneficiary.load(due.beneficiary.id)
        assertTrue(beneficiary.state.value.active)
        assertTrue(beneficiary.state.value.payable.any { it.id == due.entitlement.id })

        // No cash float yet: the core refuses, and Kotlin sees the specific exception.
        val collector = beneficiary.state.value.detail!!.members.first { it.mayCollect }.id
        val e = assertThrows<OutpostException.OverFloat> {
            core.pay(PayoutInput(due.entitlement.id, collector, due.entitlement.remainingMinor, "MWK", ProofInput.Signature("sig-1"), null))
        }
        assertContains(e.message!!, "cash float")

        // The payout screen's model shows the same sentence.
        val payout = PayoutModel(core)
        payout.start(due.beneficiary.id, due.entitlement.id)
        payout.setProof(Proof.Signature("sig-1"))
        assertFalse(payout.confirm())
        assertContains(payout.state.value.error!!, "cash float")

        val summary = SummaryModel(core)
        assertNull(summary.receiveCash("1,000,000", "MWK", "float"))
        assertTrue(payout.confirm(), payout.state.value.error)
        assertNotNull(payout.state.value.paidRecordId)

        // A second tap on Confirm does not pay twice.
        assertFalse(payout.confirm())

        // Paying the same entitlement again asks for an override reason.
        val again = PayoutModel(core)
        again.start(due.beneficiary.id, due.entitlement.id)
        again.setAmount("100")
        again.setProof(Proof.Signature("sig-2"))
        assertFalse(again.confirm())
        assertTrue(again.state.value.needsOverride)

        summary.load()
        val day = summary.state.value!!.getOrThrow()
        assertEquals(1uL, day.payouts)
        assertEquals(100_000_000L - due.entitlement.remainingMinor, day.float.single().inHandMinor)
        sync.refresh()
        assertEquals("1 records waiting to be sent", sync.state.value.headline)
    }

    @Test
    @Order(4)
    fun `the next sync reports progress and sends the payout`() {
        val phases = mutableListOf<SyncPhase>()
        val report = core.sync(object : SyncListener {
            override fun onProgress(progress: SyncProgressInfo) {
                phases += progress.phase
            }
        })
        assertEquals(1uL, report.accepted)
        assertTrue(report.status.upToDate)
        assertEquals(
            listOf(SyncPhase.CONNECTING, SyncPhase.UPLOADING, SyncPhase.DOWNLOADING, SyncPhase.RECEIVING, SyncPhase.DONE),
            phases.distinct(),
        )
        // The model's own run has nothing left to send.
        assertTrue(sync.sync())
        assertEquals(0uL, sync.state.value.lastReport!!.uploaded)
    }

    @Test
    @Order(5)
    fun `a revoked phone is wiped and the screen says so`() {
        server.cli("revoke", deviceId, "--reason", "lost in the field")
        assertFalse(sync.sync())
        assertTrue(sync.state.value.revoked)
        assertEquals("This phone was revoked", sync.state.value.headline)
        assertFalse(core.status().enrolled)
        assertThrows<OutpostException.NotEnrolled> { core.sync(null) }
    }
}
