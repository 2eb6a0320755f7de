package org.outpost.field.shared

import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import org.outpost.core.Answer
import org.outpost.core.Choice
import org.outpost.core.ContactInput
import org.outpost.core.DistributionInput
import org.outpost.core.EntitlementView
import org.outpost.core.GrievanceInput
import org.outpost.core.GrievanceView
import org.outpost.core.ItemQuantity
import org.outpost.core.OutpostInterface
import org.outpost.core.Question
import org.outpost.core.TimesheetInput
import org.outpost.core.VerificationInput

/** The outcome every record screen shows: the record written, or why not. */
data class Outcome(val recordId: String? = null, val error: String? = null)

private fun <T> Result<T>.outcome(id: (T) -> String?): Outcome =
    fold({ Outcome(recordId = id(it)) }, { Outcome(error = it.message) })

data class DistributionState(
    val entitlement: EntitlementView? = null,
    /** Item code → quantity to hand out now (what is still due, by default). */
    val quantities: Map<String, Long> = emptyMap(),
    val collectorId: String? = null,
    val outcome: Outcome = Outcome(),
)

/** Goods handed out against an entitlement, from the agent's stock. */
class DistributionModel(private val core: OutpostInterface) {
    private val once = OneAtATime()
    private val _state = MutableStateFlow(DistributionState())
    val state: StateFlow<DistributionState> = _state

    fun start(beneficiaryId: String, entitlementId: String) {
        val detail = attempt { core.beneficiary(beneficiaryId) }.getOrNull()
        val e = detail?.entitlements?.firstOrNull { it.id == entitlementId }
        _state.value = DistributionState(
            entitlement = e,
            quantities = e?.goodsRemaining?.filter { it.quantity > 0 }?.associate { it.itemCode to it.quantity }.orEmpty(),
            collectorId = detail?.members?.firstOrNull { it.mayCollect }?.id,
            outcome = if (e == null) Outcome(error = "This entitlement is not on the phone") else Outcome(),
        )
    }

    fun setQuantity(item: String, quantity: Long) {
        _state.value = _state.value.copy(quantities = _state.value.quantities + (item to quantity))
    }

    fun chooseCollector(id: String) { _state.value = _state.value.copy(collectorId = id) }

    fun confirm(): Boolean = once.run { handOut() } ?: false

    private fun handOut(): Boolean {
        val s = _state.value
        if (s.outcome.recordId != null) return false
        val e = s.entitlement ?: return false
        val items = s.quantities.filterValues { it > 0 }.map { (code, qty) -> ItemQuantity(code, qty) }
        val outcome = attempt { core.distribute(DistributionInput(e.id, s.collectorId ?: "", items)) }.outcome { it }
        _state.value = s.copy(outcome = outcome)
        return outcome.recordId != null
    }
}

data class TimesheetState(
    val projects: List<Choice> = emptyList(),
    val projectId: String? = null,
    val workDate: String = "",
    /** Hundredths of a day: 100 is a full day, 50 a half. */
    val dayHundredths: Long = 100,
    val outcome: Outcome = Outcome(),
)

/** Cash-for-work days: one entry per worker per day. */
class TimesheetModel(private val core: OutpostInterface) {
    private val once = OneAtATime()
    private val _state = MutableStateFlow(TimesheetState())
    val state: StateFlow<TimesheetState> = _state

    fun start(today: String) {
        val projects = attempt { core.projects() }.getOrDefault(emptyList())
        _state.value = TimesheetState(projects = projects, projectId = projects.firstOrNull()?.id, workDate = today)
    }

    fun set(projectId: String? = null, workDate: String? = null, dayHundredths: Long? = null) {
        val s = _state.value
        _state.value = s.copy(
            projectId = projectId ?: s.projectId,
            workDate = workDate ?: s.workDate,
            dayHundredths = dayHundredths ?: s.dayHundredths,
        )
    }

    fun record(workerBeneficiaryId: String): Boolean = once.run { write(workerBeneficiaryId) } ?: false

    private fun write(workerBeneficiaryId: String): Boolean {
        val s = _state.value
        val outcome = attempt {
            core.recordTimesheet(TimesheetInput(s.projectId ?: "", workerBeneficiaryId, s.workDate, s.dayHundredths))
        }.outcome { it }
        _state.value = s.copy(outcome = outcome)
        return outcome.recordId != null
    }
}

data class VerificationState(
    val beneficiaryId: String = "",
    val questions: List<Question> = emptyList(),
    val answers: Map<String, String> = emptyMap(),
    val proposedStatus: String? = null,
    val note: String = "",
    val outcome: Outcome = Outcome(),
)

/** An eligibility check: the plan's questions, and maybe a status change for the office. */
class VerificationModel(private val core: OutpostInterface) {
    private val once = OneAtATime()
    private val _state = MutableStateFlow(VerificationState())
    val state: StateFlow<VerificationState> = _state

    /** Status changes a verifier may propose (the office approves them). */
    val statusChoices = listOf("SUSPENDED", "ACTIVE", "GRADUATED")

    fun start(beneficiaryId: String) {
        val questions = attempt { core.questions(beneficiaryId) }
        _state.value = VerificationState(
            beneficiaryId = beneficiaryId,
            questions = questions.getOrDefault(emptyList()),
            outcome = Outcome(error = questions.exceptionOrNull()?.message),
        )
    }

    fun answer(question: String, value: String) {
        _state.value = _state.value.copy(answers = _state.value.answers + (question to value))
    }

    fun propose(status: String?) { _state.value = _state.value.copy(proposedStatus = status) }
    fun setNote(note: String) { _state.value = _state.value.copy(note = note) }

    fun submit(): Boolean = once.run { write() } ?: false

    private fun write(): Boolean {
        val s = _state.value
        if (s.outcome.recordId != null) return false
        val answers = s.answers.filterValues { it.isNotBlank() }.map { (q, a) -> Answer(q, a) }
        val outcome = attempt { core.verify(VerificationInput(s.beneficiaryId, answers, s.proposedStatus, s.note)) }.outcome { it }
        _state.value = s.copy(outcome = outcome)
        return outcome.recordId != null
    }
}

data class GrievanceState(
    val list: List<GrievanceView> = emptyList(),
    val categories: List<Choice> = emptyList(),
    val open: GrievanceView? = null,
    val error: String? = null,
)

/** Grievances: the list, a new one, comments and status moves (merged with the office's). */
class GrievanceModel(private val core: OutpostInterface) {
    private val once = OneAtATime()
    private val _state = MutableStateFlow(GrievanceState())
    val state: StateFlow<GrievanceState> = _state

    /** The status moves offered from each status. */
    fun nextStatuses(status: String): List<String> = when (status) {
        "OPEN" -> listOf("IN_PROGRESS", "RESOLVED")
        "IN_PROGRESS" -> listOf("RESOLVED", "OPEN")
        "RESOLVED" -> listOf("CLOSED", "OPEN")
        else -> emptyList()
    }

    fun load() {
        val list = attempt { core.grievances() }
        val categories = attempt { core.grievanceCategories() }
        _state.value = _state.value.copy(
            list = list.getOrDefault(emptyList()),
            categories = categories.getOrDefault(emptyList()),
            error = (list.exceptionOrNull() ?: categories.exceptionOrNull())?.message,
        )
    }

    fun create(beneficiaryId: String?, category: String, description: String): String? =
        once.run { write(beneficiaryId, category, description) }

    private fun write(beneficiaryId: String?, category: String, description: String): String? {
        val id = attempt { core.createGrievance(GrievanceInput(beneficiaryId, category, description)) }
        _state.value = _state.value.copy(error = id.exceptionOrNull()?.message)
        id.getOrNull()?.let { show(it) }
        load()
        return id.getOrNull()
    }

    fun show(id: String) {
        val g = attempt { core.grievance(id) }
        _state.value = _state.value.copy(open = g.getOrNull(), error = g.exceptionOrNull()?.message)
    }

    fun comment(text: String): Boolean = edit { core.commentGrievance(it, text) }

    fun move(status: String, assignee: String? = null): Boolean = edit { core.setGrievanceStatus(it, status, assignee) }

    private fun edit(change: (String) -> Unit): Boolean = once.run { apply(change) } ?: false

    private fun apply(change: (String) -> Unit): Boolean {
        val id = _state.value.open?.recordId ?: return false
        val done = attempt { change(id) }
        show(id)
        if (done.isFailure) _state.value = _state.value.copy(error = done.exceptionOrNull()?.message)
        return done.isSuccess
    }
}

data class ContactState(val outcome: Outcome = Outcome())

/** A beneficiary's new phone number or address, for the office to approve. */
class ContactModel(private val core: OutpostInterface) {
    private val once = OneAtATime()
    private val _state = MutableStateFlow(ContactState())
    val state: StateFlow<ContactState> = _state

    fun submit(beneficiaryId: String, personId: String, phone: String?, address: String?): Boolean =
        once.run { write(beneficiaryId, personId, phone, address) } ?: false

    private fun write(beneficiaryId: String, personId: String, phone: String?, address: String?): Boolean {
        val outcome = attempt {
            core.updateContact(ContactInput(beneficiaryId, personId, phone?.ifBlank { null }, address?.ifBlank { null }))
        }.outcome { it }
        _state.value = ContactState(outcome)
        return outcome.recordId != null
    }
}
