package org.outpost.field.ui

import androidx.compose.foundation.clickable
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.Button
import androidx.compose.material3.HorizontalDivider
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Text
import androidx.compose.material3.TextButton
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.collectAsState
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.rememberCoroutineScope
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.unit.dp
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.delay
import kotlinx.coroutines.withContext
import org.outpost.core.BeneficiarySummary
import org.outpost.core.OutpostInterface
import org.outpost.field.shared.BeneficiaryModel
import org.outpost.field.shared.MoneyText
import org.outpost.field.shared.SearchModel

/** Home: search by name, card or id (or scan a card); who is due today below. */
@Composable
fun SearchScreen(core: OutpostInterface, open: (String) -> Unit, goTo: (String) -> Unit, onLock: () -> Unit) {
    val model = remember { SearchModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    var query by remember { mutableStateOf("") }
    LaunchedEffect(Unit) { scope.io { model.loadDue() } }
    // Search once typing pauses; a newer query cancels the older one, so a slow answer never
    // replaces a newer one.
    LaunchedEffect(query) {
        delay(250)
        withContext(Dispatchers.IO) { model.search(query) }
    }
    val scan = rememberQrScanner { text -> scope.io { model.search(text) } }
    Screen("Beneficiaries", back = null, actions = {
        TextButton(onClick = { goTo("sync") }) { Text("Sync") }
        TextButton(onClick = { goTo("summary") }) { Text("Day") }
        TextButton(onClick = { goTo("grievances") }) { Text("Grievances") }
        TextButton(onClick = onLock) { Text("Lock") }
    }) {
        OutlinedTextField(
            query,
            { q -> query = q },
            label = { Text("Name, card number or id") },
            singleLine = true,
            modifier = Modifier.fillMaxWidth(),
        )
        OutlinedButton(onClick = scan) { Text("Scan a card") }
        ErrorLine(state.error)
        LazyColumn {
            if (state.query.isBlank()) {
                item { Text("Due today (${state.dueToday.size})", style = MaterialTheme.typography.titleMedium) }
                items(state.dueToday) { due -> SummaryRow(due.beneficiary) { open(due.beneficiary.id) } }
            } else {
                items(state.results) { b -> SummaryRow(b) { open(b.id) } }
            }
        }
    }
}

@Composable
fun SummaryRow(b: BeneficiarySummary, onClick: () -> Unit) {
    Column(Modifier.fillMaxWidth().clickable(onClick = onClick).padding(vertical = 8.dp)) {
        Text(b.name, style = MaterialTheme.typography.bodyLarge)
        Text("${b.planCode} · ${b.householdCode.orEmpty()} · ${b.locationCode} · ${b.status}", style = MaterialTheme.typography.bodySmall)
        b.due.forEach { Text("Due ${MoneyText.format(it.amountMinor, it.currency)}", style = MaterialTheme.typography.bodySmall) }
    }
    HorizontalDivider()
}

/** A beneficiary: household, who may collect, entitlements with their actions, history. */
@Composable
fun BeneficiaryScreen(core: OutpostInterface, id: String, back: () -> Unit, goTo: (String) -> Unit) {
    val model = remember { BeneficiaryModel(core) }
    val state by model.state.collectAsState()
    val scope = rememberCoroutineScope()
    LaunchedEffect(id) { scope.io { model.load(id) } }
    val d = state.detail
    Screen(d?.summary?.name ?: "Beneficiary", back) {
        ErrorLine(state.error)
        if (d == null) return@Screen
        LazyColumn {
            item {
                Text("${d.summary.planName} · ${d.summary.status}")
                if (d.cardSerials.isNotEmpty()) Text("Cards: ${d.cardSerials.joinToString()}")
                Text("Household", style = MaterialTheme.typography.titleMedium)
            }
            items(d.members) { m ->
                Text("${m.name} · ${m.relationship}${if (m.mayCollect) " · may collect" else ""}")
            }
            item { Text("Entitlements", style = MaterialTheme.typography.titleMedium) }
            items(d.entitlements) { e ->
                Column(Modifier.padding(vertical = 4.dp)) {
                    Text("${e.cycleCode}: ${MoneyText.format(e.amount.amountMinor, e.amount.currency)}, paid ${MoneyText.format(e.paidMinor, e.amount.currency)}")
                    e.goods.forEach { g -> Text("${g.itemCode} × ${g.quantity}") }
                    Row {
                        if (state.active && e.remainingMinor > 0) {
                            Button(onClick = { goTo("payout/$id/${e.id}") }) { Text("Pay") }
                        }
                        if (state.active && e.goodsRemaining.any { it.quantity > 0 }) {
                            Button(onClick = { goTo("distribute/$id/${e.id}") }) { Text("Hand out") }
                        }
                    }
                }
            }
            item { Text("Paid", style = MaterialTheme.typography.titleMedium) }
            items(d.payouts) { p ->
                val void = p.voidReason?.let { " · VOID: $it" }.orEmpty()
                val flag = p.overrideReason?.let { " · override: $it" }.orEmpty()
                Text("${p.paidAt.take(16)} ${MoneyText.format(p.amount.amountMinor, p.amount.currency)} to ${p.collectorName}$flag$void")
            }
            item {
                Row {
                    OutlinedButton(onClick = { goTo("verify/$id") }) { Text("Verify") }
                    OutlinedButton(onClick = { goTo("timesheet/$id") }) { Text("Timesheet") }
                    OutlinedButton(onClick = { goTo("grievance-new/$id") }) { Text("Grievance") }
                }
            }
        }
    }
}
