package org.outpost.field.ui

import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.FilterChip
import androidx.compose.material3.HorizontalDivider
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.RadioButton
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import java.time.LocalDate
import org.outpost.core.OutpostInterface
import org.outpost.field.shared.DistributionModel
import org.outpost.field.shared.GrievanceModel
import org.outpost.field.shared.MoneyText
import org.outpost.field.shared.PayoutModel
import org.outpost.field.shared.Proof
import org.outpost.field.shared.TimesheetModel
import org.outpost.field.shared.VerificationModel

/** Payout: collector, amount, proof (card scan, agent PIN or signature), confirm. */
@Composable
fun PayoutScreen(core: OutpostInterface, beneficiaryId: String, entitlementId: String, back: () -> Unit, done: () -> Unit) {
    val model = remember { PayoutModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    var witnessPin by remember { mutableStateOf("") }
    var override by remember { mutableStateOf("") }
    LaunchedEffect(entitlementId) { scope.io { model.start(beneficiaryId, entitlementId) } }
    val scanCard = rememberQrScanner { model.setProof(Proof.Card(it)) }
    Screen("Pay", back) {
        val e = state.entitlement
        if (e != null) Text("${e.cycleCode}: ${MoneyText.format(e.remainingMinor, e.amount.currency)} still due")
        Text("Who collects")
        state.collectors.forEach { m ->
            Row(verticalAlignment = Alignment.CenterVertically, modifier = Modifier.clickable { model.chooseCollector(m.id) }) {
                RadioButton(selected = state.collectorId == m.id, onClick = { model.chooseCollector(m.id) })
                Text("${m.name} (${m.relationship})")
            }
        }
        OutlinedTextField(state.amountText, model::setAmount, label = { Text("Amount (${e?.amount?.currency.orEmpty()})") }, singleLine = true)
        // Signature and photo proofs need a capture screen (not built yet): card or witness PIN.
        Text("Proof of identity")
        OutlinedButton(onClick = scanCard) { Text("Scan card") }
        PinField("Or your PIN, as witness", witnessPin) {
            witnessPin = it
            model.setProof(if (it.length >= 4) Proof.AgentPin(it) else null)
        }
        state.proof?.let { Text("Proof: ${it::class.simpleName}") }
        if (state.needsOverride) {
            OutlinedTextField(override, { override = it; model.setOverride(it) }, label = { Text("Why pay again?") })
        }
        ErrorLine(state.error)
        Button(enabled = state.canConfirm, onClick = { scope.io { if (model.confirm()) scope.launchMain(done) } }) { Text("Confirm payout") }
    }
}

/** Goods: quantities per item (what is still due by default), collector, confirm. */
@Composable
fun DistributionScreen(core: OutpostInterface, beneficiaryId: String, entitlementId: String, back: () -> Unit, done: () -> Unit) {
    val model = remember { DistributionModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    LaunchedEffect(entitlementId) { scope.io { model.start(beneficiaryId, entitlementId) } }
    Screen("Hand out goods", back) {
        state.quantities.forEach { (item, qty) ->
            OutlinedTextField(qty.toString(), { v -> v.toLongOrNull()?.let { model.setQuantity(item, it) } }, label = { Text(item) }, singleLine = true)
        }
        ErrorLine(state.outcome.error)
        Button(onClick = { scope.io { if (model.confirm()) scope.launchMain(done) } }) { Text("Confirm hand-out") }
    }
}

/** A worker's day on a cash-for-work project. */
@Composable
fun TimesheetScreen(core: OutpostInterface, workerId: String, back: () -> Unit, done: () -> Unit) {
    val model = remember { TimesheetModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    LaunchedEffect(workerId) { scope.io { model.start(LocalDate.now().toString()) } }
    Screen("Timesheet", back) {
        state.projects.forEach { p ->
            Row(verticalAlignment = Alignment.CenterVertically) {
                RadioButton(selected = state.projectId == p.id, onClick = { model.set(projectId = p.id) })
                Text(p.name)
            }
        }
        OutlinedTextField(state.workDate, { model.set(workDate = it) }, label = { Text("Date (YYYY-MM-DD)") }, singleLine = true)
        Row {
            listOf(100L to "Full day", 50L to "Half day").forEach { (h, label) ->
                FilterChip(selected = state.dayHundredths == h, onClick = { model.set(dayHundredths = h) }, label = { Text(label) })
            }
        }
        ErrorLine(state.outcome.error)
        Button(onClick = { scope.io { if (model.record(workerId)) scope.launchMain(done) } }) { Text("Record") }
    }
}

/** Eligibility check: the plan's questions, a proposed status, a note. */
@Composable
fun VerificationScreen(core: OutpostInterface, beneficiaryId: String, back: () -> Unit, done: () -> Unit) {
    val model = remember { VerificationModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    LaunchedEffect(beneficiaryId) { scope.io { model.start(beneficiaryId) } }
    Screen("Verify eligibility", back) {
        LazyColumn {
            items(state.questions) { q ->
                Column(Modifier.padding(vertical = 4.dp)) {
                    Text(q.name)
                    val choices = if (q.kind == "boolean") listOf("true", "false") else q.values
                    if (choices.isNotEmpty()) {
                        Row {
                            choices.forEach { v ->
                                FilterChip(selected = state.answers[q.name] == v, onClick = { model.answer(q.name, v) }, label = { Text(v) })
                            }
                        }
                    } else {
                        OutlinedTextField(state.answers[q.name].orEmpty(), { model.answer(q.name, it) }, singleLine = true)
                    }
                }
            }
            item {
                Text("Propose a status change (the office decides)")
                Row {
                    FilterChip(selected = state.proposedStatus == null, onClick = { model.propose(null) }, label = { Text("None") })
                    model.statusChoices.forEach { s ->
                        FilterChip(selected = state.proposedStatus == s, onClick = { model.propose(s) }, label = { Text(s) })
                    }
                }
                OutlinedTextField(state.note, model::setNote, label = { Text("Note") })
                ErrorLine(state.outcome.error)
                Button(onClick = { scope.io { if (model.submit()) scope.launchMain(done) } }) { Text("Save verification") }
            }
        }
    }
}

@Composable
fun GrievanceListScreen(core: OutpostInterface, back: () -> Unit, open: (String) -> Unit, create: () -> Unit) {
    val model = remember { GrievanceModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    LaunchedEffect(Unit) { scope.io { model.load() } }
    Screen("Grievances", back, actions = { OutlinedButton(onClick = create) { Text("New") } }) {
        ErrorLine(state.error)
        LazyColumn {
            items(state.list) { g ->
                Column(Modifier.fillMaxWidth().clickable { open(g.recordId) }.padding(vertical = 8.dp)) {
                    Text("${g.category} · ${g.status}")
                    Text(g.description.take(80))
                }
                HorizontalDivider()
            }
        }
    }
}

@Composable
fun GrievanceNewScreen(core: OutpostInterface, beneficiaryId: String?, back: () -> Unit, created: (String) -> Unit) {
    val model = remember { GrievanceModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    var category by remember { mutableStateOf<String?>(null) }
    var description by remember { mutableStateOf("") }
    LaunchedEffect(Unit) { scope.io { model.load() } }
    Screen("New grievance", back) {
        state.categories.forEach { c ->
            Row(verticalAlignment = Alignment.CenterVertically) {
                RadioButton(selected = category == c.code, onClick = { category = c.code })
                Text(c.name)
            }
        }
        OutlinedTextField(description, { description = it }, label = { Text("What happened") })
        ErrorLine(state.error)
        Button(enabled = category != null, onClick = {
            scope.io { model.create(beneficiaryId, category!!, description)?.let { id -> scope.launchMain { created(id) } } }
        }) { Text("Record grievance") }
    }
}

/** A grievance: comments (merged with the office's), status moves. */
@Composable
fun GrievanceScreen(core: OutpostInterface, id: String, back: () -> Unit, written: () -> Unit) {
    val model = remember { GrievanceModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    var comment by remember { mutableStateOf("") }
    LaunchedEffect(id) { scope.io { model.show(id) } }
    val g = state.open
    Screen(g?.category ?: "Grievance", back) {
        if (g == null) return@Screen
        Text(g.description)
        Text("Status: ${g.status}${g.assignee?.let { " · $it" }.orEmpty()}")
        Row {
            model.nextStatuses(g.status).forEach { s ->
                OutlinedButton(onClick = { scope.io { if (model.move(s)) written() } }) { Text(s) }
            }
        }
        g.comments.forEach { c -> Text("${c.author} (${c.at.take(16)}): ${c.text}") }
        OutlinedTextField(comment, { comment = it }, label = { Text("Comment") })
        ErrorLine(state.error)
        Button(enabled = comment.isNotBlank(), onClick = {
            val text = comment
            comment = ""
            scope.io { if (model.comment(text)) written() }
        }) { Text("Add comment") }
    }
}
